#!/usr/bin/env python3
"""callsite_test.py CASE ARGS...: how call sites are named (issue 13, item 9).

  dlclose_record   DLCLOSE_REUSE LIB_A LIB_B   fault.record attributes each call site to the
                                               library it is in, after LIB_B was loaded where
                                               LIB_A had been
  dlclose_callsite DLCLOSE_REUSE LIB_A LIB_B   fault.callsite naming LIB_B's site fails the
                                               allocation there in that same situation
  executable_name  REPORT_TARGET               the executable has one name in fault.log's call
                                               site and backtrace: the file name of its real
                                               path (so also for python3, a link to python3.11)

Runs the programs under the preload (LD_PRELOAD from the environment meson gives the test).
Exit 0 if the case holds, 1 with the reasons otherwise.
"""
import glob
import json
import os
import resource
import subprocess

from cases import check, run_case


def run(cmd, conf, **kw):
    env = dict(os.environ)
    env["ALLOCSCOPE_CONF"] = conf
    # A program failed on purpose may abort: no core files.
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)), **kw)


def json_lines(pattern):
    entries = []
    for path in glob.glob(pattern):
        with open(path) as f:
            # fault.record's call sites (its "stack" lines are record_stable_test.py's).
            entries += [e for e in (json.loads(line) for line in f if line.strip())
                        if e.get("kind", "site") == "site"]
    return entries


def reused(prog, lib_a, lib_b, conf):
    result = run([prog, lib_a, lib_b], conf)
    check(result.returncode == 0, f"exit status {result.returncode}: {result.stderr}")
    check("same_base=1" in result.stdout,
          f"the second library did not land where the first was, nothing to test: {result.stdout!r}")
    return result


def case_dlclose_record(prog, lib_a, lib_b, tmp):
    reused(prog, lib_a, lib_b, f"fault.record:{tmp}/record.%p.json")
    entries = json_lines(f"{tmp}/record.*.json")
    for e in entries:
        name = e["callsite"].rsplit("+", 1)[0]
        check(os.path.isabs(e["module"]) and os.path.exists(e["module"]) and
              os.path.basename(e["module"]) == name, f"a call site named by a stale name: {e}")
    by_module = {}
    for e in entries:
        by_module.setdefault(os.path.basename(e["module"]), []).append(e)
    for lib in (lib_a, lib_b):
        name = os.path.basename(lib)
        sites = by_module.get(name, [])
        check(len(sites) == 1 and sites[0]["count"] == 1,
              f"{name}: expected one call site with count 1, recorded {sites}")


def case_dlclose_callsite(prog, lib_a, lib_b, tmp):
    # B's call site, from a run that loads only B.
    run([prog, "only", lib_b], f"fault.record:{tmp}/only.%p.json")
    name = os.path.basename(lib_b)
    sites = [e["callsite"] for e in json_lines(f"{tmp}/only.*.json")
             if os.path.basename(e["module"]) == name]
    if not check(len(sites) == 1, f"{name}: expected one recorded call site, got {sites}"):
        return
    result = reused(prog, lib_a, lib_b, f"fault.callsite:{sites[0]}")
    check("b_alloc=failed" in result.stdout,
          f"fault.callsite:{sites[0]} did not fail the allocation there: {result.stdout!r}")


def logged(cmd, exe, tmp, tag, conf):
    """Runs cmd with the first allocation made directly by the executable failed; returns
    the fault.log entries."""
    run(cmd, f"fault.caller:{exe},fault.depth:1,fault.times:1,fault.log:{tmp}/{tag}.%p.jsonl,{conf}")
    return json_lines(f"{tmp}/{tag}.*.jsonl")


def check_names(entries, exe, what):
    if not check(len(entries) == 1, f"{what}: expected one injected failure, logged {entries}"):
        return None
    e = entries[0]
    frames = e["backtrace"]
    check(e["callsite"].startswith(exe + "+0x"), f"{what}: call site {e['callsite']}, expected {exe}+0x...")
    check(frames and frames[0] == e["callsite"],
          f"{what}: the call site is {e['callsite']} but the backtrace names it {frames[:1]}")
    stray = [f for f in frames if f.startswith("main+") or f.startswith("+")]
    check(not stray, f"{what}: executable frames not named {exe}: {stray}")
    return e["callsite"]


def case_executable_name(target, tmp):
    # Our program, started through a link with another name.
    alias = os.path.join(tmp, "alias")
    os.symlink(target, alias)
    exe = os.path.basename(os.path.realpath(target))
    site = check_names(logged([alias, "fail", "1"], exe, tmp, "target", "fault.size_min:1M"),
                       exe, "report_target via a link")
    # fault.callsite takes that name.
    if site:
        run([alias, "fail", "1"], f"fault.callsite:{site},fault.log:{tmp}/again.%p.jsonl")
        again = json_lines(f"{tmp}/again.*.jsonl")
        check(len(again) == 1 and again[0]["callsite"] == site,
              f"fault.callsite:{site} did not fail that call site: {again}")
    # A real Debian program started as python3, a link to python3.X.
    python = "/usr/bin/python3"
    exe = os.path.basename(os.path.realpath(python))
    check_names(logged([python, "-c", "pass"], exe, tmp, "python", "fault.verbose:0"),
                exe, "python3")


if __name__ == "__main__":
    run_case("callsite_test", __doc__, globals())
