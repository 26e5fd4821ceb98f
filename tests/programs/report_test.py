#!/usr/bin/env python3
"""report_test.py CASE REPORT_TARGET: where failure reports and output files go, with real
pipes, terminals, FIFOs, links and processes (issue 13, items 7, 8, 10, 16 and 18).

Runs report_target (tests/programs/report_target.c) under the preload (LD_PRELOAD from the
environment meson gives the test) with a configuration that makes its allocations fail and
be reported, arranges its stderr, log files and directories per CASE, and checks exit
status, signals, file contents and the stats JSON. Exit 0 if the case holds, 1 with the
reasons otherwise, 77 if it cannot run here (the ownership case needs root).

Cases: full_pipe closed_pipe tty_background daemon contention relative symlink_dir fifo
owner pid_name hard_link
"""
import fcntl
import json
import os
import signal
import subprocess
import sys
import termios

from cases import check, run_case

LIMIT = "limit:16M,policy:nowait,warn_burst:0"
FAILED = "malloc(67108864) failed"


def env_with(conf):
    env = dict(os.environ)
    env["ALLOCSCOPE_CONF"] = conf
    return env


def stats_of(path):
    with open(path) as f:
        return json.load(f)["allocscope"]


def run(cmd, conf, timeout=20, extra_env=None, **kw):
    """The command under the preload with conf; None if it did not finish in time."""
    env = env_with(conf)
    env.update(extra_env or {})
    try:
        return subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        return None


def read(path):
    with open(path) as f:
        return f.read()


def lines_with(text, what):
    return [line for line in text.splitlines() if what in line]


# ---- item 7: a report never blocks and never raises a signal ----

def case_full_pipe(prog, tmp):
    """A failing NOWAIT allocation returns at once while stderr is a pipe nobody reads
    and that is full; the report is dropped and counted."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    for chunk in (4096, 1):  # pages first, then the last bytes of the last page
        try:
            while True:
                os.write(w, b"x" * chunk)
        except BlockingIOError:
            pass
    os.set_blocking(w, True)  # the program inherits a blocking descriptor, as from a shell
    stats = os.path.join(tmp, "stats.json")
    p = subprocess.Popen([prog, "fail", "3"], stdout=subprocess.PIPE, stderr=w, text=True,
                         env=env_with(f"{LIMIT},stats_file:{stats}"))
    os.close(w)
    try:
        out, _ = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        os.close(r)
        check(False, "the program blocked writing a report to a full stderr pipe")
        return
    os.close(r)
    check(p.returncode == 0, f"exit status {p.returncode}: {out!r}")
    check("3 of 3 failed" in out, f"not every allocation failed: {out!r}")
    slowest = int(out.split("slowest ")[1].split(" ms")[0]) if "slowest " in out else 99999
    check(slowest < 1000, f"a failing NOWAIT allocation took {slowest} ms")
    check("fd 2 flags unchanged" in out, f"the program's fd 2 flags changed: {out!r}")
    s = stats_of(stats)
    dropped = s.get("reports_dropped", 0)
    check(dropped >= 3, f"reports_dropped {dropped}, expected >= 3")


def case_closed_pipe(prog, tmp):
    """`prog 2>&1 | head -1`: the reader is gone when the program reports; the program ends
    with its own exit status, not SIGPIPE; a SIGPIPE the program itself has pending stays."""
    for mode in ("line-then-fail", "pending-then-fail"):
        stats = os.path.join(tmp, f"stats-{mode}.json")
        r, w = os.pipe()
        p = subprocess.Popen([prog, mode], stdin=subprocess.PIPE, stdout=w, stderr=w,
                             env=env_with(f"{LIMIT},stats_file:{stats}"))
        os.close(w)
        first = b""
        while not first.endswith(b"\n"):
            chunk = os.read(r, 1)
            if not chunk:
                break
            first += chunk
        os.close(r)  # head -1 has its line and exits
        check(first == b"ready\n", f"{mode}: first line {first!r}")
        p.stdin.write(b"g")
        p.stdin.close()
        try:
            status = p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            status = p.wait()
        check(status == 7, f"{mode}: exit status {status}"
              + (" (killed by SIGPIPE)" if status == -signal.SIGPIPE else "")
              + (" (its own pending SIGPIPE was consumed)" if status == 9 else "")
              + ", expected the program's own 7")
        if status == 7:
            check(stats_of(stats).get("reports_dropped", 0) >= 1, f"{mode}: the dropped report was not counted")


def case_tty_background(prog, tmp):
    """A background job of a terminal with `stty tostop` is not stopped by SIGTTOU when it
    reports, and the report reaches the terminal."""
    try:
        master, slave = os.openpty()
    except OSError as e:
        print(f"report_test: tty_background: no pseudo-terminal here ({e})")
        sys.exit(77)
    pid = os.fork()
    if pid == 0:  # a session of its own with the terminal as its controlling terminal
        code = 99
        try:
            os.close(master)
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            attrs = termios.tcgetattr(slave)
            attrs[3] |= termios.TOSTOP
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            child = os.fork()
            if child == 0:
                os.setpgid(0, 0)  # a background job of that terminal
                os.dup2(slave, 2)
                os.execve(prog, [prog, "fail", "1"], env_with(LIMIT))
            _, status = os.waitpid(child, os.WUNTRACED)
            if os.WIFSTOPPED(status):
                code = 10 + os.WSTOPSIG(status)
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
            else:
                code = os.waitstatus_to_exitcode(status)
                code = code if 0 <= code < 10 else 98
        finally:
            os._exit(code)
    os.close(slave)
    seen = b""
    os.set_blocking(master, False)
    while True:
        try:
            seen += os.read(master, 4096)
        except BlockingIOError:
            pass
        except OSError:  # EIO: the terminal's last user is gone
            pass
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        os.sched_yield()
    code = os.waitstatus_to_exitcode(status)
    check(code != 10 + signal.SIGTTOU, "the background job was stopped by SIGTTOU writing a report")
    check(code == 0, f"exit status {code}")
    try:
        seen += os.read(master, 4096)
    except OSError:
        pass
    os.close(master)
    check(FAILED.encode() in seen, f"the report did not reach the terminal: {seen!r}")


# ---- item 8: reports go to the stderr the process started with, or to log_file ----

def case_daemon(prog, tmp):
    """A daemon that closes 0-2 and opens its data file there gets no report line and no
    stats in it; with log_file the report is there."""
    for with_log in (False, True):
        data = os.path.join(tmp, f"data-{with_log}")
        log = os.path.join(tmp, "log")
        stats = os.path.join(tmp, f"stats-{with_log}.json")
        conf = f"{LIMIT},stats_print:true,stats_file:{stats}" + (f",log_file:{log}" if with_log else "")
        result = run([prog, "daemon", data], conf)
        check(result is not None and result.returncode == 0,
              f"log_file {with_log}: exit status {result and result.returncode}")
        content = read(data) if os.path.exists(data) else None
        check(content == "data 1\ndata 2\n",
              f"log_file {with_log}: the daemon's data file holds {content!r}")
        if with_log:
            check(len(lines_with(read(log), FAILED)) == 1, f"the log file lacks the report: {read(log)!r}")
        else:
            check(stats_of(stats).get("reports_dropped", 0) >= 1, "the dropped report was not counted")


# ---- item 16: log_file routing under contention ----

def case_contention(prog, tmp):
    """8 threads reporting at once with log_file set: every report is in the log file,
    none on stderr."""
    log = os.path.join(tmp, "log")
    threads, each = 8, 2000
    result = run([prog, "threads", str(threads), str(each)], f"{LIMIT},log_file:{log}", timeout=120)
    check(result is not None and result.returncode == 0, f"exit status {result and result.returncode}")
    if result is None:
        return
    on_stderr = lines_with(result.stderr, "allocscope:")
    check(not on_stderr, f"{len(on_stderr)} of {threads * each} reports went to stderr: {on_stderr[:3]}")
    in_log = len(lines_with(read(log), FAILED))
    check(in_log == threads * each, f"{in_log} reports in the log file, expected {threads * each}")


# ---- item 18: relative paths resolve once, at configuration ----

def case_relative(prog, tmp):
    """log_file and stats_file given relative to the directory the program starts in stay
    there when it changes directory."""
    one, two = os.path.join(tmp, "one"), os.path.join(tmp, "two")
    os.mkdir(one)
    os.mkdir(two)
    result = run([prog, "chdir-fail", two], f"{LIMIT},log_file:rel.log,stats_file:rel-stats.json",
                 cwd=one)
    check(result is not None and result.returncode == 0, f"exit status {result and result.returncode}")
    check(os.listdir(two) == [], f"written in the directory changed to: {os.listdir(two)}")
    check(os.path.exists(os.path.join(one, "rel.log")) and
          len(lines_with(read(os.path.join(one, "rel.log")), FAILED)) == 1,
          "the report is not in the log file of the starting directory")
    check(os.path.exists(os.path.join(one, "rel-stats.json")), "no stats in the starting directory")


# ---- item 10: output files ----

# Each output key, with the configuration that makes it write: fault.log needs an injected
# failure (the 64 MiB allocation, selected by size), the others a failure report or exit.
OUTPUT_KEYS = {
    "stats_file": LIMIT,
    "log_file": LIMIT,
    "fault.record": LIMIT,
    "fault.log": "fault.size_min:32M,fault.probability:100,warn_burst:0",
}


def refused_once(result, path, why, key):
    """The run went on, and exactly one line on stderr names the path and why."""
    if not check(result is not None, f"{key}: the program hung (a FIFO?) at {path}"):
        return
    check(result.returncode == 0, f"{key}: exit status {result.returncode}: {result.stderr}")
    named = lines_with(result.stderr, path)
    check(len(named) == 1, f"{key}: {len(named)} lines name {path}: {result.stderr!r}")
    if not key.endswith("log_file"):  # log_file is refused by the configuration's bad-value line
        check(any(why in line for line in named), f"{key}: the line does not say {why!r}: {named}")


def case_symlink_dir(prog, tmp):
    """A symbolic link in a directory part of the path is not followed: by openat2, and by
    the per-component walk where openat2 is missing (a seccomp filter hides it from main on,
    so log_file, checked before main, is left out there). Paths through real directories
    with "." and ".." still work."""
    victim = os.path.join(tmp, "victim")
    os.mkdir(victim)
    os.mkdir(os.path.join(tmp, "real"))
    os.symlink(victim, os.path.join(tmp, "evil"))
    for walk in (False, True):
        extra = {"REPORT_TARGET_NO_OPENAT2": "1"} if walk else {}
        how = "walk" if walk else "openat2"
        for key, conf in OUTPUT_KEYS.items():
            if walk and key == "log_file":
                continue
            target = os.path.join(victim, key)
            with open(target, "w") as f:
                f.write("victim\n")
            path = os.path.join(tmp, "real", "..", "evil", ".", key)
            result = run([prog, "fail", "1"], f"{conf},{key}:{path}", extra_env=extra)
            check(read(target) == "victim\n", f"{how}: {key}: written through the link: {read(target)!r}")
            refused_once(result, path, "symbolic link", f"{how}: {key}")
            # The same name through real directories is written.
            good = os.path.join(tmp, "real", ".", "..", "real", f"{how}-{key}")
            result = run([prog, "fail", "1"], f"{conf},{key}:{good}", extra_env=extra)
            check(result is not None and result.returncode == 0 and os.path.getsize(good) > 0
                  and "cannot write" not in result.stderr,
                  f"{how}: {key}: not written through real directories: {result and result.stderr}")


def case_fifo(prog, tmp):
    """A FIFO at an output path is refused at once: the program neither hangs before main
    (log_file) nor at exit (stats_file, fault.record) nor inside malloc (fault.log)."""
    for key, conf in OUTPUT_KEYS.items():
        path = os.path.join(tmp, key + ".fifo")
        os.mkfifo(path)
        result = run([prog, "fail", "1"], f"{conf},{key}:{path}", timeout=15)
        refused_once(result, path, "FIFO", key)


def case_owner(prog, tmp):
    """Root does not write into a file another user owns."""
    if os.geteuid() != 0:
        print("report_test: owner: needs root (to give a file to another user)")
        sys.exit(77)
    for key, conf in OUTPUT_KEYS.items():
        path = os.path.join(tmp, key + ".theirs")
        with open(path, "w") as f:
            f.write("theirs\n")
        os.chown(path, 65534, 65534)
        result = run([prog, "fail", "1"], f"{conf},{key}:{path}")
        check(read(path) == "theirs\n", f"{key}: root wrote into another user's file: {read(path)!r}")
        refused_once(result, path, "owned by another user", key)


def case_pid_name(prog, tmp):
    """A per-process name ("%p") is created fresh: a file planted under the name the
    process will use is left alone."""
    for key in ("stats_file", "fault.record"):
        pattern = os.path.join(tmp, key + ".%p.json")
        p = subprocess.Popen([prog, "wait-then-fail"], stdin=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=env_with(f"{LIMIT},{key}:{pattern}"))
        planted = pattern.replace("%p", str(p.pid))
        with open(planted, "w") as f:
            f.write("planted\n")
        try:
            _, err = p.communicate("g", timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        check(read(planted) == "planted\n", f"{key}: the planted {planted} was overwritten")
        refused_once(subprocess.CompletedProcess(p.args, p.returncode, "", err), planted,
                     "exists already", key)


def case_hard_link(prog, tmp):
    """A name that is a hard link to another file (someone else's name for it) is refused."""
    for key, conf in OUTPUT_KEYS.items():
        victim = os.path.join(tmp, key + ".victim")
        with open(victim, "w") as f:
            f.write("victim\n")
        path = os.path.join(tmp, key + ".link")
        os.link(victim, path)
        result = run([prog, "fail", "1"], f"{conf},{key}:{path}")
        check(read(victim) == "victim\n", f"{key}: written into the linked file: {read(victim)!r}")
        refused_once(result, path, "hard links", key)


if __name__ == "__main__":
    run_case("report_test", __doc__, globals())
