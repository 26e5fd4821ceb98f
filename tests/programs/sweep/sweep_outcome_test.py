#!/usr/bin/env python3
"""sweep_outcome_test.py: `allocscope sweep` judged on programs built for each outcome.

  sweep_outcome_test.py CASE ALLOCSCOPE NAME=PROGRAM...

Each case runs real sweeps (real processes, the preload, no mocks) and asserts the JSON:
  stack_wrapper          wrapper_sites: stack mode finds exactly the two UNCHECKED callers
                         of the wrapper as crashes, at their source lines; nth agrees;
                         callsite mode (one site for all twelve callers) finds no crash;
  grandchild_crash       crash_child behind `sh -c '( ... | cat ); echo done'`: the top
                         status is 0, the point is a crash in a grandchild, named;
  shell_and_python_args  crash stacks from the runs' own records for `sh -c` and
                         `python3 -c` commands whose arguments hold spaces, quotes, | and
                         $, with a gdb on PATH that must never be started;
  wrong_output           wrong_output: exit 0 and an item missing is wrong-output (clean
                         with --ignore-output);
  oom_exit               oom_exit: exit(3) and abort() in the wrappers are oom-exit;
  leak                   leak_path: the leaking error path is leak, with its 64 KiB;
  hang                   hang_target: hang, with both threads' stacks in the report;
  persistent             persistent_target: exit 4 with one failure, 5 with --persistent;
  underscore_exit        a shell that ends in _exit writes its fault.record (sites and
                         stacks) and its fault.events exit line with its status;
  chain_handler          a program that installs its own SIGSEGV handler (sigaction or
                         signal) after start-up: the crash record is written and then the
                         program's handler runs (its exit status 7);
  thread_overflow        a thread's stack overflow still writes a crash line, from that
                         thread, with the recursing function on its stack.
Exits 0 if all holds, 1 otherwise.
"""
import json
import os
import re
import stat
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
problems = []


def check(condition, message):
    if not condition:
        problems.append(message)
    return condition


def marker_lines(name, marker):
    """The line numbers of `marker` in NAME.c."""
    with open(os.path.join(HERE, name + ".c")) as f:
        return [n for n, line in enumerate(f, 1) if marker in line]


def line_of(frame):
    """The line number of a symbolised frame, or None."""
    m = re.search(r":(\d+)", (frame or {}).get("source") or "")
    return int(m.group(1)) if m else None


def sweep(allocscope, workdir, name, command, extra=(), env=None, timeout=30):
    json_path = os.path.join(workdir, name + ".json")
    cmd = [allocscope, "sweep", "--jobs", "2", "--timeout", str(timeout), "--json", json_path,
           *extra, "--"] + command
    print("$", " ".join(cmd), flush=True)
    # In the test's own directory: each run starts in a fresh copy of the working directory.
    result = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=600, env=env, cwd=workdir)
    sys.stdout.write(result.stdout[-3000:])
    sys.stdout.write(result.stderr[-3000:])
    if not os.path.exists(json_path):
        check(False, f"{name}: exit status {result.returncode}, no JSON report")
        return {"points": [], "baseline": {}}
    with open(json_path) as f:
        report = json.load(f)
    # The CI gate: 1 when a crash, hang, leak or wrong-output point was found, else 0.
    failing = any(p["outcome"] in ("crash", "hang", "leak", "wrong-output")
                  for p in report["points"])
    check(result.returncode == (1 if failing else 0),
          f"{name}: exit status {result.returncode} with failing points: {failing}")
    return report


def caller_line(point, frame=1):
    """The source line of frame `frame` of the point's first injection backtrace."""
    if not point["injections"]:
        return None
    bt = point["injections"][0]["backtrace"]
    return line_of(bt[frame]) if len(bt) > frame else None


def points_at(report, name, lines, frame=0):
    """Points whose injection frame `frame` is at one of `lines` of NAME.c."""
    out = []
    for p in report["points"]:
        if not p["injections"]:
            continue
        bt = p["injections"][0]["backtrace"]
        if len(bt) > frame and (bt[frame].get("source") or "").find(name + ".c:") >= 0 \
                and line_of(bt[frame]) in lines:
            out.append(p)
    return out


def case_stack_wrapper(allocscope, progs, workdir):
    unchecked = set(marker_lines("wrapper_sites", "/* UNCHECKED */"))
    check(len(unchecked) == 2, f"wrapper_sites.c has {len(unchecked)} UNCHECKED lines")
    for mode in ("stack", "nth"):
        report = sweep(allocscope, workdir, mode, [progs["wrapper_sites"]], ["--mode", mode])
        crashes = [p for p in report["points"] if p["outcome"] == "crash"]
        lines = sorted(caller_line(p) for p in crashes)
        check(lines == sorted(unchecked),
              f"{mode}: crashes at caller lines {lines}, expected {sorted(unchecked)}")
        for p in crashes:
            top = p.get("crash_stack") or [{}]
            check(top[0].get("function") == "main" and line_of(top[0]) == caller_line(p),
                  f"{mode}: crash stack starts at {top[0]}, not main at line {caller_line(p)}")
            check(p["process"] and p["process"]["exe"] == "wrapper_sites",
                  f"{mode}: crash process {p['process']}")
        handled = [p for p in report["points"] if p["outcome"] == "handled"]
        check(len(handled) >= 10, f"{mode}: {len(handled)} handled points, expected 10")
        if mode == "stack":
            check(len({p["stack_hash"] for p in report["points"]}) == len(report["points"]),
                  "stack: two points with one stack hash")
    report = sweep(allocscope, workdir, "callsite", [progs["wrapper_sites"]],
                   ["--mode", "callsite"])
    check(not [p for p in report["points"] if p["outcome"] == "crash"],
          "callsite: the wrapper's one call site should not tell the unchecked callers apart")


def case_grandchild_crash(allocscope, progs, workdir):
    line = marker_lines("crash_child", "/* UNCHECKED */")[0]
    command = ["/bin/sh", "-c", f'( "{progs["crash_child"]}" "a b" | cat ); echo done']
    report = sweep(allocscope, workdir, "grandchild", command, ["--only", "crash_child"])
    check(report["baseline"].get("exit_status") == 0, "baseline status")
    crashes = [p for p in report["points"] if p["outcome"] == "crash"]
    if check(len(crashes) == 1, f"{len(crashes)} crashes, expected 1"):
        p = crashes[0]
        check(p["exit_status"] == 0 and p["signal"] is None,
              f"the top process should exit 0, got {p['exit_status']} / {p['signal']}")
        check(p["process"]["exe"] == "crash_child" and p["process"]["depth"] == 2,
              f"crash process {p['process']}, expected crash_child two levels down")
        check("grandchild" in p["reason"], f"reason: {p['reason']}")
        check(line_of(p["crash_stack"][0]) == line, f"crash stack {p['crash_stack'][:2]}")
        check(len(p["processes"]) >= 3, f"processes: {p['processes']}")
    # Only crash_child's allocations are points: none of sh's or cat's.
    for p in report["points"]:
        for inj in p["injections"]:
            check(any("crash_child" in f["frame"] for f in inj["backtrace"]),
                  f"--only crash_child: a point outside it: {inj['backtrace'][:3]}")


def fake_gdb_path(workdir):
    """A directory with a `gdb` that leaves a mark, first on PATH."""
    bindir = os.path.join(workdir, "bin")
    os.makedirs(bindir, exist_ok=True)
    mark = os.path.join(workdir, "gdb-was-run")
    gdb = os.path.join(bindir, "gdb")
    with open(gdb, "w") as f:
        f.write(f"#!/bin/sh\ntouch '{mark}'\nexec /usr/bin/gdb \"$@\"\n")
    os.chmod(gdb, stat.S_IRWXU)
    env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
    return env, mark


def case_shell_and_python_args(allocscope, progs, workdir):
    env, mark = fake_gdb_path(workdir)
    line = marker_lines("crash_child", "/* UNCHECKED */")[0]
    args = ["two words", "$X | y", 'q"uote', "it's"]
    script = 'printf "%s\\n" "start | $HOME"; "$0" "$@"'
    command = ["/bin/sh", "-c", script, progs["crash_child"]] + args
    report = sweep(allocscope, workdir, "sh", command, ["--only", "crash_child"], env=env)
    expected = "start | " + os.environ.get("HOME", "") + "\n" + "".join(a + "\n" for a in args)
    check(report["baseline"].get("stdout", "").startswith(expected),
          f"sh: baseline stdout {report['baseline'].get('stdout')!r}, expected {expected!r}...")
    crashes = [p for p in report["points"] if p["outcome"] == "crash"]
    if check(len(crashes) == 1, f"sh: {len(crashes)} crashes"):
        check(line_of(crashes[0]["crash_stack"][0]) == line,
              f"sh: crash stack {crashes[0]['crash_stack'][:2]}")
    code = ('import ctypes; s = "a | b $HOME \\"q\\" \'s\'"; libc = ctypes.CDLL(None); '
            'libc.malloc.restype = ctypes.c_void_p; p = libc.malloc(12345); '
            'ctypes.memset(p, 0, 16); print(s)')
    report = sweep(allocscope, workdir, "python", ["/usr/bin/python3", "-c", code],
                   ["--only", "_ctypes"], env=env)
    check(report["baseline"].get("stdout") == 'a | b $HOME "q" \'s\'\n',
          f"python: baseline stdout {report['baseline'].get('stdout')!r}")
    ours = [p for p in report["points"]
            if p["injections"] and p["injections"][0]["size"] == 12345]
    if check(len(ours) == 1, f"python: {len(ours)} points of malloc(12345)"):
        p = ours[0]
        check(p["outcome"] == "crash", f"python: malloc(12345) point is {p['outcome']}")
        stack = p.get("crash_stack") or []
        check(stack and stack[0]["module"].startswith("libc.so"),
              f"python: crash stack starts {stack[:1]}")
        check(any(f["module"].startswith("_ctypes") for f in stack),
              f"python: no _ctypes frame in the crash stack {stack}")
        check(p["process"] and p["process"]["exe"].startswith("python3"),
              f"python: process {p['process']}")
    check(not os.path.exists(mark), "gdb was started")


def case_wrong_output(allocscope, progs, workdir):
    lines = marker_lines("wrong_output", "FAILS SILENTLY")
    for extra, expected in (((), "wrong-output"), (("--ignore-output",), "clean")):
        report = sweep(allocscope, workdir, "wrong" + "".join(extra), [progs["wrong_output"]],
                       list(extra))
        ours = points_at(report, "wrong_output", lines)
        if check(len(ours) == 1, f"{len(ours)} points at the silent allocation"):
            check(ours[0]["outcome"] == expected and ours[0]["exit_status"] == 0,
                  f"silent failure {extra}: {ours[0]['outcome']}, expected {expected}")


def case_oom_exit(allocscope, progs, workdir):
    report = sweep(allocscope, workdir, "oom", [progs["oom_exit"]])
    dies = points_at(report, "oom_exit", marker_lines("oom_exit", "xmalloc(size_t n)"), 0)
    # The wrappers' allocations: frame 0 is inside xmalloc / xcalloc.
    for fn, how in (("xmalloc", "exit"), ("xcalloc", "crash")):
        ours = [p for p in report["points"] if p["injections"]
                and p["injections"][0]["backtrace"][0].get("function") == fn]
        if check(len(ours) == 1, f"{len(ours)} points in {fn}"):
            p = ours[0]
            check(p["outcome"] == "oom-exit", f"{fn}: {p['outcome']} ({p['reason']})")
            check(p["process"] and p["process"]["end"] == how, f"{fn}: process {p['process']}")
    del dies


def case_leak(allocscope, progs, workdir):
    report = sweep(allocscope, workdir, "leak", [progs["leak_path"]])
    ours = points_at(report, "leak_path", marker_lines("leak_path", "/* RECORDS */"))
    if check(len(ours) == 1, f"{len(ours)} points at the records buffer"):
        p = ours[0]
        check(p["outcome"] == "leak", f"records buffer: {p['outcome']} ({p['reason']})")
        check((p["leak_bytes"] or 0) >= 60000 and (p["failed_path_bytes"] or 0) >= 65536,
              f"leak bytes {p['leak_bytes']}, failed path {p['failed_path_bytes']}")
    name = points_at(report, "leak_path", [line for line in marker_lines("leak_path", "malloc(32)")])
    if check(len(name) == 1, f"{len(name)} points at malloc(32)"):
        check(name[0]["outcome"] == "handled", f"malloc(32): {name[0]['outcome']}")


def case_hang(allocscope, progs, workdir):
    report = sweep(allocscope, workdir, "hang", [progs["hang_target"]], timeout=3)
    ours = points_at(report, "hang_target", marker_lines("hang_target", "HANG POINT"))
    if check(len(ours) == 1, f"{len(ours)} points at the hang point"):
        p = ours[0]
        check(p["outcome"] == "hang", f"hang point: {p['outcome']}")
        threads = p.get("threads") or []
        functions = {f.get("function") for t in threads for f in t["frames"]}
        check(len(threads) >= 2, f"{len(threads)} thread stacks")
        check("sleeper" in functions and "wait_forever" in functions,
              f"thread stacks name {sorted(str(f) for f in functions)}")


def case_persistent(allocscope, progs, workdir):
    lines = marker_lines("persistent_target", "/* FIRST */")
    for extra, status in (((), 4), (("--persistent",), 5)):
        report = sweep(allocscope, workdir, "persistent" + "".join(extra),
                       [progs["persistent_target"]], list(extra))
        ours = points_at(report, "persistent_target", lines)
        if check(len(ours) == 1, f"{len(ours)} points at the first allocation"):
            check(ours[0]["exit_status"] == status,
                  f"{extra}: exit status {ours[0]['exit_status']}, expected {status}")
            check(len(ours[0]["injections"]) == (1 if not extra else 2),
                  f"{extra}: {len(ours[0]['injections'])} injections")


def case_underscore_exit(allocscope, progs, workdir):
    conf = f"fault.record:{workdir}/record.%p,fault.events:{workdir}/events.%p"
    r = subprocess.run([allocscope, "run", "--conf", conf, "--", "/bin/sh", "-c", "exit 3"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 3, f"sh: exit status {r.returncode}")
    names = os.listdir(workdir)
    records = [json.loads(line) for n in names if n.startswith("record.")
               for line in open(os.path.join(workdir, n))]
    events = [json.loads(line) for n in names if n.startswith("events.")
              for line in open(os.path.join(workdir, n))]
    check(any(e.get("kind") == "stack" for e in records), f"no stack lines: {records[:3]}")
    check(any(e.get("kind") == "site" for e in records), f"no site lines: {records[:3]}")
    exits = [e for e in events if e["kind"] == "exit"]
    check(len(exits) == 1 and exits[0]["how"] == "_exit" and exits[0]["status"] == 3,
          f"exit lines: {exits}")
    check(any(e["kind"] == "start" for e in events), f"no start line: {events}")


def case_chain_handler(allocscope, progs, workdir):
    for how in ("sigaction", "signal"):
        events = os.path.join(workdir, how + ".%p")
        conf = f"fault.size_min:64,fault.size_max:64,fault.nth:1,fault.events:{events}"
        r = subprocess.run([allocscope, "run", "--conf", conf, "--", progs["chain_handler"], how],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 7 and "own handler ran" in r.stderr,
              f"{how}: status {r.returncode}, stderr {r.stderr!r}: the program's handler")
        lines = [json.loads(line) for n in os.listdir(workdir) if n.startswith(how + ".")
                 for line in open(os.path.join(workdir, n))]
        crashes = [e for e in lines if e["kind"] == "crash"]
        check(len(crashes) == 1 and crashes[0]["signal"] == 11 and crashes[0]["injected"] == 1,
              f"{how}: crash lines {crashes}")
    r = subprocess.run([allocscope, "run", "--conf", "fault.size_min:64,fault.size_max:64,fault.nth:1",
                        "--", progs["chain_handler"], "sigaction"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 7, f"without fault.events: status {r.returncode}")


def case_thread_overflow(allocscope, progs, workdir):
    events = os.path.join(workdir, "events.%p")
    r = subprocess.run([allocscope, "run", "--conf", f"fault.events:{events}", "--",
                        progs["thread_overflow"]], capture_output=True, text=True, timeout=60)
    check(r.returncode == -11, f"status {r.returncode}, expected SIGSEGV")
    lines = [json.loads(line) for n in os.listdir(workdir) if n.startswith("events.")
             for line in open(os.path.join(workdir, n)) if line.strip()]
    crashes = [e for e in lines if e["kind"] == "crash"]
    if check(len(crashes) == 1, f"crash lines: {crashes}"):
        c = crashes[0]
        check(c["tid"] != c["pid"] and c["signal"] == 11, f"crash line {c}")
        check(len(c["frames"]) >= 8 and all(f.startswith("thread_overflow+")
                                            for f in c["frames"][:8]),
              f"frames {c['frames'][:8]}: the recursion")


def main():
    case, allocscope = sys.argv[1], sys.argv[2]
    progs = dict(arg.split("=", 1) for arg in sys.argv[3:])
    with tempfile.TemporaryDirectory() as workdir:
        globals()["case_" + case](allocscope, progs, workdir)
    for p in problems:
        print("FAIL:", p)
    print("ok" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
