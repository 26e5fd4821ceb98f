#!/usr/bin/env python3
"""live_test.py CASE ALLOCSCOPE [SIGNAL_TARGET]: stats that survive the exit signals, and the live view and
control of running processes (issue 18, items 1 to 3), on real python3 processes started
with `allocscope run`.

Each case runs with XDG_RUNTIME_DIR set to a private temporary directory, so its live pages
(policy/live_page.h) are its own. Exit 0 if the case holds, 1 with the reasons otherwise,
77 if it cannot run here.

Cases: sigterm_stats sigterm_json own_handler reraise ignored python_sigint signal_api live_stats
ctl_limit ctl_refused ctl_timeout top refusals files fork profile
"""
import json
import os
import re
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time

from cases import check

PY = "/usr/bin/python3"
ALLOCSCOPE = None
SIGNAL_TARGET = None  # tests/programs/signal_target

# Allocates 1 MiB every 20 ms and keeps it, until told to stop (a file), printing its pid:
# a busy process, whose events come often. With a second argument, a file that, once it
# exists, makes it try a 64 MiB allocation and say what happened.
BUSY = r"""
import os, sys, time
keep = []
print(os.getpid(), flush=True)
stop, big = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
while not os.path.exists(stop):
    keep.append(bytearray(1 << 20))
    if len(keep) > 40: del keep[:20]
    if big and os.path.exists(big):
        try:
            bytearray(64 << 20)
            print("big ok", flush=True)
        except MemoryError:
            print("big MemoryError", flush=True)
        os.unlink(big)
    time.sleep(0.02)
print("done", flush=True)
"""

# Allocates 30 MiB, says so, and sleeps: what a service looks like when it is stopped.
SLEEPER = r"""
import sys, time
keep = [bytearray(1 << 20) for _ in range(30)]
print("ready", flush=True)
time.sleep(60)
"""


def env_in(tmp, **extra):
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("ALLOCSCOPE_CONF", None)
    env["XDG_RUNTIME_DIR"] = tmp
    env.update(extra)
    return env


def start(tmp, run_args, script, *args, **popen):
    """python3 -c script under allocscope run; waits for its first line, returns (proc, line)."""
    p = subprocess.Popen([ALLOCSCOPE, "run", *run_args, "--", PY, "-c", script, *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env_in(tmp), **popen)
    line = p.stdout.readline().strip()
    return p, line


def command(tmp, *args, timeout=30):
    return subprocess.run([ALLOCSCOPE, *args], capture_output=True, text=True, env=env_in(tmp),
                          timeout=timeout)


def stats_json(tmp, pid):
    r = command(tmp, "stats", "--json", str(pid))
    if not check(r.returncode == 0, f"stats --json {pid}: {r.returncode} {r.stderr}"):
        return {}
    return json.loads(r.stdout)["allocscope"]


def page_dir(tmp):
    return os.path.join(tmp, "allocscope")


def finish(p, stop_file):
    open(stop_file, "w").close()
    return p.communicate(timeout=30)


# ---- item 1: the stats survive SIGTERM, SIGINT, SIGHUP ----

def case_sigterm_stats(tmp):
    """python3 under --stats --limit, killed by SIGTERM: the summary, with a peak, and death
    by SIGTERM."""
    stats_file = os.path.join(tmp, "stats.json")
    p, line = start(tmp, ["--stats", "--limit", "256M", "--conf", f"stats_file:{stats_file}"],
                    SLEEPER)
    check(line == "ready", f"first line {line!r}")
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    check(p.returncode == -signal.SIGTERM, f"status {p.returncode}, expected death by SIGTERM")
    check("stopped   by SIGTERM" in err, f"no summary line for the signal: {err[-800:]}")
    m = re.search(r"peak +([0-9.]+) MiB", err)
    check(m is not None and float(m.group(1)) >= 30, f"summary's peak: {err[-800:]}")
    check("limit     256.0 MiB" in err, f"summary's limit: {err[-800:]}")
    with open(stats_file) as f:
        s = json.load(f)["allocscope"]
    check(s.get("signal") == "SIGTERM", f"stats_file: signal {s.get('signal')}")
    check(s["budget"]["peak"] >= 30 << 20, f"stats_file: peak {s['budget']['peak']}")
    check(s["budget"]["peak_at_ms"] > 0, f"stats_file: peak_at_ms {s['budget']['peak_at_ms']}")
    check(s["rss"]["peak"] >= 30 << 20, f"stats_file: rss peak {s['rss']}")
    check(not os.path.exists(os.path.join(page_dir(tmp), f"{p.pid}.page")),
          "the live page is still there after SIGTERM")


def case_sigterm_json(tmp):
    """stats_print:json on SIGHUP: the JSON line on stderr, death by SIGHUP."""
    p, line = start(tmp, ["--limit", "256M", "--conf", "stats_print:json"], SLEEPER)
    p.send_signal(signal.SIGHUP)
    out, err = p.communicate(timeout=30)
    check(p.returncode == -signal.SIGHUP, f"status {p.returncode}, expected death by SIGHUP")
    m = re.search(r"^allocscope: stats (\{.*\})$", err, re.M)
    if check(m is not None, f"no stats JSON line: {err[-500:]}"):
        s = json.loads(m.group(1))["allocscope"]
        check(s["signal"] == "SIGHUP" and s["budget"]["peak"] > 0, f"JSON: {m.group(1)[:300]}")


def case_own_handler(tmp):
    """A program's own SIGTERM handler, installed after the preload's: its behaviour, and no
    stats from the preload's handler (the process exits normally: the stats at exit)."""
    script = ("import signal, sys, time\n"
              "def h(sig, frame):\n  print('handled', flush=True)\n  sys.exit(7)\n"
              "signal.signal(signal.SIGTERM, h)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    p, line = start(tmp, ["--stats"], script)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    check(p.returncode == 7 and "handled" in out, f"status {p.returncode} out {out!r}")
    check("summary:" in err and "stopped   by" not in err,
          f"expected the exit summary, not the handler's: {err[-500:]}")


def case_reraise(tmp):
    """A handler that cleans up, restores SIG_DFL and raises again (what daemons do): the
    preload's stand-in for SIG_DFL writes the stats, the process dies of SIGTERM."""
    script = ("import os, signal, time\n"
              "def h(sig, frame):\n  print('cleanup', flush=True)\n"
              "  signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
              "  os.kill(os.getpid(), signal.SIGTERM)\n  time.sleep(5)\n"
              "signal.signal(signal.SIGTERM, h)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    p, line = start(tmp, ["--stats"], script)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    check(p.returncode == -signal.SIGTERM and "cleanup" in out,
          f"status {p.returncode} out {out!r}")
    check("stopped   by SIGTERM" in err, f"no stats from the stand-in: {err[-500:]}")


def case_ignored(tmp):
    """SIGTERM ignored before the program starts (nohup's way) stays ignored, and the
    program reads SIG_IGN."""
    script = ("import signal, time\nprint(signal.getsignal(signal.SIGTERM) == signal.SIG_IGN, "
              "flush=True)\ntime.sleep(1)\nprint('survived', flush=True)\n")
    p, line = start(tmp, ["--stats"], script,
                    preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN))
    check(line == "True", f"getsignal(SIGTERM) == SIG_IGN: {line}")
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    check(p.returncode == 0 and "survived" in out, f"status {p.returncode} out {out!r}")


def case_python_sigint(tmp):
    """Python sees SIGINT and SIGTERM at SIG_DFL under the preload (so it installs its
    KeyboardInterrupt handler), exactly as without it."""
    script = ("import signal, time\n"
              "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, "
              "signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, flush=True)\n"
              "try:\n  time.sleep(60)\nexcept KeyboardInterrupt:\n  print('KeyboardInterrupt')\n")
    results = []
    for run_args in (None, ["--stats"]):
        if run_args is None:
            p = subprocess.Popen([PY, "-c", script], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env_in(tmp))
            line = p.stdout.readline().strip()
        else:
            p, line = start(tmp, run_args, script)
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        results.append((line, p.returncode, out))
    check(results[0] == results[1] and results[0][0] == "True True",
          f"without / with the preload: {results}")


def case_signal_api(tmp):
    """The same through C's signal(): a program's own handler keeps its behaviour; one that
    restores SIG_DFL and raises again dies of SIGTERM with the stats written; signal() and
    sigaction() report SIG_DFL for the three signals, as without the preload."""
    # "own" ends with _exit from its handler: no stats at all (the one exit that writes none).
    for mode, status, out_has, err_has in (("own", 5, "handled", ""),
                                           ("restore", -signal.SIGTERM, "cleanup",
                                            "stopped   by SIGTERM")):
        p = subprocess.Popen([ALLOCSCOPE, "run", "--stats", "--", SIGNAL_TARGET, mode],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env_in(tmp))
        line = p.stdout.readline().strip()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        check(line == "ready" and p.returncode == status and out_has in out,
              f"{mode}: {line!r} status {p.returncode} out {out!r}")
        check(err_has in err, f"{mode}: stderr {err[-400:]!r}")
        if mode == "own":
            check("stopped   by" not in err, f"own: the preload's handler ran: {err[-400:]!r}")
    for pre in ([], [ALLOCSCOPE, "run", "--stats", "--"]):
        r = subprocess.run(pre + [SIGNAL_TARGET, "query"], capture_output=True, text=True,
                           env=env_in(tmp), timeout=30)
        check(r.stdout.strip() == "dfl dfl dfl", f"query {pre[:2]}: {r.stdout!r}")


# ---- item 3: live view and control ----

def case_live_stats(tmp):
    """allocscope stats PID on a running python3: the charge grows as it allocates."""
    stop = os.path.join(tmp, "stop")
    script = ("import os, sys, time\nkeep = []\nprint(os.getpid(), flush=True)\n"
              "while not os.path.exists(sys.argv[1]):\n  keep.append(bytearray(1 << 20))\n"
              "  time.sleep(0.02)\n")
    p, line = start(tmp, ["--limit", "1G"], script, stop)
    time.sleep(0.5)
    first = stats_json(tmp, p.pid)
    time.sleep(1.0)
    second = stats_json(tmp, p.pid)
    summary = command(tmp, "stats", str(p.pid))
    finish(p, stop)
    if first and second:
        a, b = first["budget"]["charged"], second["budget"]["charged"]
        check(b > a + (10 << 20), f"charged {a} then {b}: expected growth of 10 MiB or more")
        check(second["budget"]["limit"] == 1 << 30, f"limit {second['budget']['limit']}")
    check(summary.returncode == 0 and "limit     1.0 GiB" in summary.stdout
          and "as of" in summary.stdout, f"summary: {summary.returncode} {summary.stdout}")


def case_ctl_limit(tmp):
    """allocscope ctl PID limit:... lowers a running python3's limit: its next 64 MiB
    allocation raises MemoryError, where it succeeded before."""
    stop, big = os.path.join(tmp, "stop"), os.path.join(tmp, "big")
    p, line = start(tmp, ["--limit", "1G"], BUSY, stop, big)
    open(big, "w").close()
    first = p.stdout.readline().strip()
    r = command(tmp, "ctl", str(p.pid), "limit:48M")
    check(r.returncode == 0 and "applied limit:48M" in r.stdout, f"ctl: {r.returncode} {r.stdout} {r.stderr}")
    s = stats_json(tmp, p.pid)
    check(s.get("budget", {}).get("limit") == 48 << 20, f"limit after ctl: {s.get('budget')}")
    open(big, "w").close()
    second = p.stdout.readline().strip()
    finish(p, stop)
    check(first == "big ok" and second == "big MemoryError", f"before/after: {first!r} {second!r}")


def case_ctl_refused(tmp):
    """A malformed pair: the preload's message, exit 1, nothing changed (the good pair
    beside it included). A pair the process refuses: its message comes back, exit 1."""
    stop = os.path.join(tmp, "stop")
    p, line = start(tmp, ["--limit", "1G"], BUSY, stop)
    r = command(tmp, "ctl", str(p.pid), "limit:64M,retry_max:lots")
    check(r.returncode == 1 and "bad value 'lots' for key 'retry_max'" in r.stderr
          and len(r.stderr.strip().splitlines()) == 1, f"malformed: {r.returncode} {r.stderr!r}")
    s = stats_json(tmp, p.pid)
    check(s.get("budget", {}).get("limit") == 1 << 30, f"limit changed: {s.get('budget')}")
    r = command(tmp, "ctl", str(p.pid), "profile:dump")
    check(r.returncode == 1 and "jemalloc's profiler is off" in r.stderr,
          f"refused by the process: {r.returncode} {r.stderr!r}")
    finish(p, stop)


def case_ctl_timeout(tmp):
    """An idle process does not pick the request up: exit 3 after --timeout, withdrawn, and
    the process applies nothing later."""
    p, line = start(tmp, ["--limit", "1G"], SLEEPER)
    t0 = time.monotonic()
    r = command(tmp, "ctl", "--timeout", "0.5", str(p.pid), "limit:64M")
    took = time.monotonic() - t0
    check(r.returncode == 3 and "did not pick the request up" in r.stderr and took < 5,
          f"ctl on an idle process: {r.returncode} {r.stderr!r} in {took:.1f} s")
    s = stats_json(tmp, p.pid)
    check(s.get("budget", {}).get("limit") == 1 << 30, f"limit: {s.get('budget')}")
    p.kill()
    p.communicate()


def case_top(tmp):
    """allocscope top --once lists the running process with its limit, and not a process
    that is not under allocscope."""
    stop = os.path.join(tmp, "stop")
    p, line = start(tmp, ["--limit", "1G"], BUSY, stop)
    time.sleep(0.3)
    r = command(tmp, "top", "--once")
    finish(p, stop)
    rows = [l for l in r.stdout.splitlines() if l.split()[:1] == [str(p.pid)]]
    check(r.returncode == 0 and r.stdout.startswith("PID") and len(rows) == 1
          and "1.0 GiB" in rows[0] and "python3" in rows[0], f"top: {r.stdout!r}")
    # Other processes of this user under allocscope (in /tmp/allocscope-UID) may be listed
    # too; this test's own python3 is not under allocscope and must not be.
    check(str(os.getpid()) not in [l.split()[0] for l in r.stdout.splitlines()[1:]],
          f"top lists a process that is not under allocscope: {r.stdout!r}")


def case_refusals(tmp):
    """stats and ctl refuse, in one line with exit 1: a dead PID, a PID not under allocscope,
    another user's process, a page of an unknown version; and a PID that is not a number."""
    def refused(args, what):
        r = command(tmp, *args)
        check(r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and what in r.stderr,
              f"{args}: {r.returncode} {r.stderr!r}, expected '{what}'")

    dead = subprocess.Popen(["true"])
    dead.wait()
    refused(["stats", str(dead.pid)], f"no process {dead.pid} is running")
    refused(["ctl", str(dead.pid), "limit:1G"], f"no process {dead.pid} is running")
    plain = subprocess.Popen(["sleep", "30"], env=env_in(tmp))
    refused(["stats", str(plain.pid)], "is not under allocscope with control:true")
    refused(["ctl", str(plain.pid), "limit:1G"], "is not under allocscope with control:true")
    # A page of another version for that process.
    os.makedirs(page_dir(tmp), mode=0o700, exist_ok=True)
    with open(os.path.join(page_dir(tmp), f"{plain.pid}.page"), "wb") as f:
        f.write(struct.pack("<II", 0x50534c41, 99) + bytes(4096))
    refused(["stats", str(plain.pid)], "is version 99; this allocscope reads version 1")
    plain.kill()
    plain.wait()
    # Another user's process: as root, one started as nobody; otherwise pid 1 (root's).
    if os.getuid() == 0:
        other = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                  "sleep", "30"])
        time.sleep(0.2)
        refused(["stats", str(other.pid)], "belongs to another user (uid 65534)")
        refused(["ctl", str(other.pid), "limit:1G"], "belongs to another user")
        other.kill()
        other.wait()
    else:
        refused(["stats", "1"], "belongs to another user")
    r = command(tmp, "stats", "12x")
    check(r.returncode == 2 and "'12x' is not a process id" in r.stderr, f"12x: {r.stderr!r}")


def case_files(tmp):
    """The directory is 0700, the page 0600, both the user's; the page goes at exit; a
    page left by a killed process is removed by the command; a bare LD_PRELOAD makes none."""
    stop = os.path.join(tmp, "stop")
    p, line = start(tmp, [], BUSY, stop)
    time.sleep(0.2)
    d = page_dir(tmp)
    page = os.path.join(d, f"{p.pid}.page")
    ds, ps = os.lstat(d), os.lstat(page) if os.path.exists(page) else None
    check(stat.S_IMODE(ds.st_mode) == 0o700 and ds.st_uid == os.getuid(), f"dir {oct(ds.st_mode)}")
    check(ps is not None and stat.S_ISREG(ps.st_mode) and stat.S_IMODE(ps.st_mode) == 0o600
          and ps.st_uid == os.getuid(), f"page {ps}")
    finish(p, stop)
    check(not os.path.exists(page), "the page is still there after a normal exit")
    # SIGKILL leaves the page; the command removes it.
    p, line = start(tmp, [], BUSY, stop + "2")
    page = os.path.join(d, f"{p.pid}.page")
    p.kill()
    p.communicate()
    check(os.path.exists(page), "a SIGKILLed process's page should remain until cleaned")
    command(tmp, "top", "--once")
    check(not os.path.exists(page), "top --once did not remove a stale page")
    # Off by default for a bare LD_PRELOAD.
    lib = command(tmp, "lib").stdout.strip()
    env = env_in(tmp, LD_PRELOAD=lib, ALLOCSCOPE_CONF="stats_print:summary")
    r = subprocess.run([PY, "-c", "import os; print(os.listdir(os.path.join("
                        "os.environ['XDG_RUNTIME_DIR'], 'allocscope')))"],
                       capture_output=True, text=True, env=env)
    check(r.stdout.strip() == "[]", f"pages under a bare LD_PRELOAD: {r.stdout!r}")
    # A directory others can read is refused, and the process goes on without a page.
    os.chmod(d, 0o755)
    p, line = start(tmp, [], BUSY, stop + "3")
    out, err = finish(p, stop + "3")
    check("others have access to it" in err and "done" in out, f"mode 0755: {err[-300:]!r}")
    check(not os.path.exists(os.path.join(d, f"{p.pid}.page")), "a page in a 0755 directory")


def case_fork(tmp):
    """A fork child has a page of its own (made at its first event), listed by top; it goes
    when the child ends with _exit. ctl control:false removes a page, and is answered."""
    stop = os.path.join(tmp, "stop")
    script = ("import os, sys, time\nprint(os.getpid(), flush=True)\nchild = os.fork()\n"
              "if child == 0:\n  keep = [bytearray(1 << 20) for _ in range(20)]\n"
              "  while not os.path.exists(sys.argv[1]):\n    x = bytearray(100000)\n"
              "    time.sleep(0.02)\n  os._exit(0)\n"
              "print(child, flush=True)\n"
              "while not os.path.exists(sys.argv[1]):\n  x = bytearray(100000)\n"
              "  time.sleep(0.02)\nos.waitpid(child, 0)\n")
    p, line = start(tmp, ["--limit", "1G"], script, stop)
    child = int(p.stdout.readline())
    time.sleep(0.5)
    r = command(tmp, "top", "--once")
    pids = [int(l.split()[0]) for l in r.stdout.splitlines()[1:]]
    check(p.pid in pids and child in pids, f"top: {r.stdout!r}, expected {p.pid} and {child}")
    s = stats_json(tmp, child)
    check(s.get("pid") == child, f"the child's page is the child's: {s.get('pid')}")
    r = command(tmp, "ctl", str(p.pid), "control:false")
    check(r.returncode == 0, f"ctl control:false: {r.returncode} {r.stderr!r}")
    check(not os.path.exists(os.path.join(page_dir(tmp), f"{p.pid}.page")),
          "the page is still there after control:false")
    finish(p, stop)
    check(os.listdir(page_dir(tmp)) == [], f"pages left: {os.listdir(page_dir(tmp))}")


# ---- item 5: heap profiles ----

def case_profile(tmp):
    """allocscope run --profile: jemalloc's profiler is on; ctl PID profile:dump writes a
    profile of what is live (jeprof reads it: 60 MiB or more of bytearrays), and one more
    is dumped at exit."""
    stop = os.path.join(tmp, "stop")
    script = ("import os, sys, time\nkeep = [bytearray(1 << 20) for _ in range(80)]\n"
              "print(os.getpid(), flush=True)\n"
              "while not os.path.exists(sys.argv[1]):\n  x = bytearray(200000)\n"
              "  time.sleep(0.01)\n")
    p, line = start(tmp, ["--profile"], script, stop, cwd=tmp)
    r = command(tmp, "ctl", str(p.pid), "profile:dump")
    check(r.returncode == 0, f"ctl profile:dump: {r.returncode} {r.stderr!r}")
    finish(p, stop)
    dumped = os.path.join(tmp, f"jeprof.{p.pid}.0.m0.heap")
    final = [f for f in os.listdir(tmp) if f.startswith(f"jeprof.{p.pid}.") and f.endswith(".f.heap")]
    check(os.path.exists(dumped), f"no {dumped}: {os.listdir(tmp)}")
    check(len(final) == 1, f"no profile at exit: {os.listdir(tmp)}")
    jeprof = "/usr/bin/jeprof"
    if os.path.exists(dumped) and os.path.exists(jeprof):
        r = subprocess.run([jeprof, "--text", os.path.realpath(PY), dumped], capture_output=True,
                           text=True, timeout=120)
        m = re.search(r"^Total: ([0-9.]+) MB", r.stdout, re.M)
        check(m is not None and float(m.group(1)) >= 60, f"jeprof: {r.stdout[:300]!r} {r.stderr[-300:]!r}")


def main():
    global ALLOCSCOPE
    cases = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}
    if len(sys.argv) not in (3, 4) or sys.argv[1] not in cases:
        sys.exit(__doc__)
    ALLOCSCOPE = os.path.abspath(sys.argv[2])
    if len(sys.argv) > 3:
        global SIGNAL_TARGET
        SIGNAL_TARGET = os.path.abspath(sys.argv[3])
    with tempfile.TemporaryDirectory() as tmp:
        cases[sys.argv[1]](tmp)
    from cases import problems
    for p in problems:
        print(f"FAIL: {sys.argv[1]}: {p}", file=sys.stderr)
    if not problems:
        print(f"live_test: {sys.argv[1]}: ok")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
