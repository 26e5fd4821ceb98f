#!/usr/bin/env python3
"""sweep_test.py: `allocscope sweep` on sweep_target and on Debian's sqlite3.

  sweep_test.py ALLOCSCOPE SWEEP_TARGET

1. --mode callsite on sweep_target: exactly one crash (SIGSEGV), at the allocation marked
   UNCHECKED in sweep_target.c, with that source line in the table, the JSON and the HTML
   and a crash stack from the run's crash record; every other point "handled", each with the exit status of its
   check (10+N) and symbolised to the line of its allocation; every check reached.
2. --mode nth: every reached point fails one of the same call sites with the same outcome
   and exit status, together they cover every site, and the sweep ends with one
   not-reached point.
3. `sqlite3 :memory: < script.sql`, --mode callsite and --mode nth --max-points 200: each
   completes and writes the JSON and the HTML, and the first point of each crash group
   replays (sweep --replay) to the same outcome.
Prints each sweep's throughput (runs per second). Exits 0 if all holds, 1 otherwise.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SQL = """CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);
INSERT INTO t(b) VALUES ('one'), ('two'), ('three');
SELECT count(*), group_concat(b) FROM t;
"""

SQLITE_NTH_POINTS = 200  # of about 500 allocations: enough to cross into SQL execution

problems = []


def check(condition, message):
    if not condition:
        problems.append(message)
    return condition


def target_lines():
    """(line of the UNCHECKED allocation, {check N: line of `return failed(N`})."""
    unchecked, checks = None, {}
    with open(os.path.join(HERE, "sweep_target.c")) as f:
        for number, line in enumerate(f, 1):
            if "/* UNCHECKED */" in line:
                unchecked = number
            m = re.search(r"return failed\((\d+),", line)
            if m:
                checks[int(m.group(1))] = number
    return unchecked, checks


def sweep(allocscope, workdir, name, mode, command, stdin=None, extra=()):
    """Runs one sweep; returns (exit status, stdout, report or None, html text or None)."""
    json_path = os.path.join(workdir, name + ".json")
    html_path = os.path.join(workdir, name + ".html")
    cmd = [allocscope, "sweep", "--mode", mode, "--jobs", "2", "--timeout", "20",
           "--json", json_path, "--html", html_path, *extra, "--"] + command
    print("$", " ".join(cmd), flush=True)
    with open(stdin if stdin else os.devnull, "rb") as fin:
        # In the test's own directory: each run starts in a copy of it.
        result = subprocess.run(cmd, stdin=fin, capture_output=True, text=True, timeout=600,
                                cwd=workdir)
    sys.stdout.write(result.stdout)
    sys.stdout.write(result.stderr)
    report = html = None
    if os.path.exists(json_path):
        with open(json_path) as f:
            report = json.load(f)
    if os.path.exists(html_path):
        with open(html_path) as f:
            html = f.read()
    check(report is not None, f"{name}: no JSON report")
    if report:
        # The CI gate: 1 when a failing point (crash, hang, leak, wrong output) was found.
        failing = any(p["outcome"] in ("crash", "hang", "leak", "wrong-output")
                      for p in report["points"])
        check(result.returncode == (1 if failing else 0),
              f"{name}: exit status {result.returncode}, expected {1 if failing else 0}")
    check(html is not None, f"{name}: no HTML report")
    if report:
        s = report["summary"]
        print(f"THROUGHPUT {name}: {s['points']} points in {s['sweep_seconds']} s, "
              f"{s['runs_per_second']} runs/s", flush=True)
    return result.stdout, report, html


def line_of(source):
    """The line number of a "sweep_target.c:N" source, else None."""
    m = re.search(r"sweep_target\.c:(\d+)$", source or "")
    return int(m.group(1)) if m else None


def target_frame_line(point):
    """The first line in sweep_target.c of the point's call site or injection backtrace
    (a site inside libc, like strdup's, is reached through a frame of ours)."""
    if line_of(point.get("source")):
        return line_of(point["source"])
    for inj in point["injections"][:1]:
        for frame in inj["backtrace"]:
            if line_of(frame.get("source")):
                return line_of(frame["source"])
    return None


def check_callsite_sweep(stdout, report, html, unchecked, checks):
    points = report["points"]
    crashes = [p for p in points if p["outcome"] == "crash"]
    if check(len(crashes) == 1, f"callsite: {len(crashes)} crashes, expected 1: "
             f"{[(p['callsite'], p['outcome']) for p in crashes]}"):
        crash = crashes[0]
        where = f"sweep_target.c:{unchecked}"
        check(line_of(crash.get("source")) == unchecked,
              f"callsite: the crash is at {crash.get('source')}, expected {where}")
        check(crash.get("signal") == 11,
              f"callsite: crash signal {crash.get('signal')}, not SIGSEGV")
        check(where in stdout, f"callsite: the table lacks {where}")
        check(where in html, f"callsite: the HTML lacks {where}")
        # The crash stack comes from the run's own crash record (no gdb run).
        trace = crash.get("crash_stack") or []
        check(any("sweep_target.c:" in (f.get("source") or "") for f in trace),
              f"callsite: no crash stack through sweep_target.c: {trace}")
    statuses = {}
    for p in points:
        if p["outcome"] == "crash":
            continue
        check(p["outcome"] == "handled", f"callsite: {p['callsite']} ({p.get('source')}) is "
              f"{p['outcome']}, expected handled")
        n = p.get("exit_status", 0) - 10 if p.get("exit_status") else None
        statuses[n] = p
        if n in checks:
            check(target_frame_line(p) in (checks[n] - 1, checks[n]),
                  f"callsite: {p['callsite']} exits for check {n} (line {checks[n]}) but is "
                  f"symbolised to sweep_target.c:{target_frame_line(p)}")
    missing = sorted(set(checks) - set(statuses))
    check(not missing, "callsite: the error path of these checks was never reached (their "
          f"allocation was not swept): {[f'check {n}, line {checks[n]}' for n in missing]}")
    check("<details>" in html and "<script src" not in html and "http://" not in html
          and "https://" not in html, "callsite: the HTML is not self-contained with <details>")


def check_nth_sweep(report, by_site):
    points = report["points"]
    reached = [p for p in points if p["outcome"] != "not-reached"]
    check(points and points[-1]["outcome"] == "not-reached" and len(reached) == len(points) - 1,
          "nth: the sweep does not end with exactly one not-reached point")
    for p in reached:
        site = by_site.get(p["callsite"])
        if check(site is not None, f"nth: point {p['point']} fails {p['callsite']}, which the "
                 "callsite sweep did not have"):
            outcome = (p["outcome"], p.get("exit_status"))
            check(outcome == (site["outcome"], site.get("exit_status")),
                  f"nth: point {p['point']} at {p['callsite']} is {p['outcome']} "
                  f"(exit {p.get('exit_status')}), the callsite sweep found {site['outcome']} "
                  f"(exit {site.get('exit_status')})")
    check({p["callsite"] for p in reached} == set(by_site),
          "nth: the points do not cover the same call sites as the callsite sweep")


def check_crash_replays(allocscope, workdir, name):
    """The first point of every crash group replays to the same outcome (sweep --replay:
    the same stdin file, a fresh copy of the working directory)."""
    with open(os.path.join(workdir, name + ".json")) as f:
        report = json.load(f)
    groups = {}
    for p in report["points"]:
        if p["outcome"] == "crash":
            groups.setdefault(json.dumps(p["crash_stack"] or p["callsite"]), p)
    for p in groups.values():
        r = subprocess.run([allocscope, "sweep", "--replay", p["id"],
                            os.path.join(workdir, name + ".json")],
                           capture_output=True, text=True, timeout=120, cwd=workdir)
        check(r.returncode == 0 and "as in the sweep" in r.stdout,
              f"{name}: crash {p['id']} did not replay: {r.stdout}{r.stderr}")
    print(f"{name}: {len(groups)} crash groups replayed", flush=True)


def check_sqlite(allocscope, workdir):
    sqlite3 = shutil.which("sqlite3")
    if sqlite3 is None:
        print("sqlite3 is not installed: its sweep is skipped")
        return
    script = os.path.join(workdir, "script.sql")
    with open(script, "w") as f:
        f.write(SQL)
    for mode, extra in (("callsite", []), ("nth", ["--max-points", str(SQLITE_NTH_POINTS)])):
        name = f"sqlite3-{mode}"
        _, report, html = sweep(allocscope, workdir, name, mode, [sqlite3, ":memory:"],
                                stdin=script, extra=extra)
        if report:
            check(report["baseline"]["exit_status"] == 0, f"{name}: the baseline failed")
            check("3|one,two,three" in report["baseline"]["stdout"],
                  f"{name}: the baseline did not read the script from stdin")
            check(report["summary"]["points"] > 0, f"{name}: no points swept")
            if mode == "nth":
                check(len(report["points"]) == SQLITE_NTH_POINTS,
                      f"{name}: {len(report['points'])} points, --max-points was "
                      f"{SQLITE_NTH_POINTS}")
            check_crash_replays(allocscope, workdir, name)
        if html:
            check("allocscope sweep" in html and "</html>" in html,
                  f"{name}: the HTML is incomplete")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    allocscope, target = sys.argv[1], os.path.abspath(sys.argv[2])
    unchecked, checks = target_lines()
    workdir = tempfile.mkdtemp(prefix="sweep-test-")
    try:
        stdout, report, html = sweep(allocscope, workdir, "callsite", "callsite", [target])
        if report and html:
            check_callsite_sweep(stdout, report, html, unchecked, checks)
            by_site = {p["callsite"]: p for p in report["points"]}
            _, nth_report, _ = sweep(allocscope, workdir, "nth", "nth", [target])
            if nth_report:
                check_nth_sweep(nth_report, by_site)
        check_sqlite(allocscope, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for p in problems:
        print(f"FAIL: {p}", file=sys.stderr)
    print("sweep_test: " + ("ok" if not problems else f"{len(problems)} problems"))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
