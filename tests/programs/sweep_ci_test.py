#!/usr/bin/python3
"""sweep_ci_test.py ALLOCSCOPE SWEEP_TARGET CREATE_ONCE: `allocscope sweep` as a CI gate and
at scale, on real runs, asserting the JSON report.

- CI: exit status 1 on sweep_target's crash, 0 once --write-known's file is given to
  --known; JUnit parses as XML (a testcase per group, one failure); SARIF 2.1.0 has
  version, $schema, runs[].tool.driver.name and a result located at the unchecked line.
- Ids and replay: ids are stable between two sweeps; each crash group's replay line,
  run by a shell, dies of SIGSEGV; --replay ID REPORT reproduces every point's outcome,
  nth points included (stdin from the same saved file).
- Isolation: create_once fails when its file exists; every point is clean with a fresh
  copy of the working directory per run, and the runs see each other with --shared-cwd.
- Scale: --shard 1/2 and 2/2 merged equal the unsharded sweep (ids and outcomes);
  --sample N --seed S draws the same N points twice and says so; an interrupted sweep
  writes a partial report and --resume runs only the missing points.
- Bad input: one line naming the problem, exit 2.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

ALLOCSCOPE = TARGET = CREATE_ONCE = None
HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 240


def unchecked_line():
    with open(os.path.join(HERE, "sweep_target.c")) as f:
        for number, line in enumerate(f, 1):
            if "/* UNCHECKED */" in line:
                return number
    raise AssertionError("no UNCHECKED mark in sweep_target.c")


def env():
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ALLOCSCOPE_CONF")}


class Sweeps(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="allocscope-sweep-ci-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.cwd = os.path.join(self.dir, "cwd")  # where the sweeps start: small, copied
        os.mkdir(self.cwd)

    def path(self, name):
        return os.path.join(self.dir, name)

    def sweep(self, *args, command=None, expect=None):
        """Runs allocscope sweep ARGS -- COMMAND; returns (result, report or None)."""
        json_path = self.last_json = self.path(f"r{len(os.listdir(self.dir))}.json")
        cmd = [ALLOCSCOPE, "sweep", "--jobs", "2", "--timeout", "20", "--json", json_path,
               *args, "--", *(command or [TARGET])]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env(),
                           cwd=self.cwd, stdin=subprocess.DEVNULL)
        if expect is not None:
            self.assertEqual(r.returncode, expect, f"{cmd}\n{r.stdout}\n{r.stderr}")
        report = None
        if os.path.exists(json_path):
            with open(json_path) as f:
                report = json.load(f)
            self.assertEqual(report["schema"], 2)
        return r, report

    def outcomes(self, report):
        return {p["id"]: p["outcome"] for p in report["points"]}

    # ---- CI --------------------------------------------------------------------------

    def test_exit_status_known_junit_sarif(self):
        junit, sarif, known = self.path("j.xml"), self.path("s.sarif"), self.path("known")
        html = self.path("r.html")
        r, report = self.sweep("--junit", junit, "--sarif", sarif, "--write-known", known,
                               "--html", html, expect=1)
        # The table and the page show groups, the crash first, with its replay command.
        self.assertTrue(r.stdout.splitlines()[1].startswith("crash (SIGSEGV)"), r.stdout)
        with open(html) as f:
            page = f.read()
        self.assertIn("allocscopeFilter", page)
        self.assertNotIn("<script src", page)
        rows = re.findall(r'<tr class="group ([a-z-]+)"', page)
        self.assertEqual(rows[0], "crash")
        self.assertIn(f"sweep_target.c:{unchecked_line()}", page)
        crashes = [p for p in report["points"] if p["outcome"] == "crash"]
        self.assertEqual(len(crashes), 1)
        # The fields schema 2 promises for every point, and for crashes.
        for p in report["points"]:
            for key in ("id", "outcome", "stack", "replay", "caller", "crash_stack", "process"):
                self.assertIn(key, p)
            for frame in p["stack"]:
                self.assertEqual(set(frame), {"module", "offset", "function", "file", "line"})
        self.assertEqual(crashes[0]["process"]["signal_name"], "SIGSEGV")
        self.assertEqual(crashes[0]["caller"]["line"], unchecked_line())
        self.assertEqual(report["summary"]["counts"]["crash"], 1)
        self.assertEqual(set(report["summary"]["counts"]),
                         {"clean", "handled", "oom-exit", "wrong-output", "leak", "crash",
                          "hang", "not-reached"})
        self.assertIn(crashes[0]["id"], r.stderr)
        with open(known) as f:
            self.assertIn(crashes[0]["id"], f.read())
        self.sweep("--known", known, expect=0)
        suites = ET.parse(junit).getroot()
        cases = suites.findall("./testsuite/testcase")
        self.assertEqual(len(cases), len({(p["outcome"], p["callsite"]) for p in report["points"]}))
        self.assertEqual(len(suites.findall("./testsuite/testcase/failure")), 1)
        with open(sarif) as f:
            s = json.load(f)
        self.assertEqual(s["version"], "2.1.0")
        self.assertIn("sarif", s["$schema"])
        run = s["runs"][0]
        self.assertEqual(run["tool"]["driver"]["name"], "allocscope")
        self.assertEqual(len(run["results"]), 1)
        loc = run["results"][0]["locations"][0]["physicalLocation"]
        self.assertTrue(loc["artifactLocation"]["uri"].endswith("sweep_target.c"))
        self.assertEqual(loc["region"]["startLine"], unchecked_line())

    # ---- ids and replay --------------------------------------------------------------

    def test_ids_are_stable_and_replays_reproduce(self):
        for mode in ("callsite", "nth"):
            _, report = self.sweep("--mode", mode, expect=1)
            report_path = self.last_json
            _, b = self.sweep("--mode", mode, "--jobs", "1", expect=1)
            self.assertEqual(self.outcomes(report), self.outcomes(b), mode)
            for p in report["points"]:
                self.assertIn(f"{ALLOCSCOPE} run --conf ", p["replay"])
                r = subprocess.run([ALLOCSCOPE, "sweep", "--replay", p["id"], report_path],
                                   capture_output=True, text=True, timeout=TIMEOUT, env=env(),
                                   cwd=self.cwd)
                self.assertEqual(r.returncode, 0, f"{p['id']}: {r.stdout}{r.stderr}")
                self.assertIn("as in the sweep", r.stdout)
                if p["outcome"] == "not-reached":
                    self.assertIn("never matched", r.stdout)
                if p["outcome"] == "crash":
                    # From anywhere: the line changes to the sweep's directory itself.
                    sh = subprocess.run(["/bin/sh", "-c", p["replay"]], capture_output=True,
                                        timeout=TIMEOUT, env=env(), cwd="/")
                    self.assertEqual(sh.returncode, 128 + signal.SIGSEGV, p["replay"])

    # ---- isolation -------------------------------------------------------------------

    def test_each_run_gets_a_fresh_working_directory(self):
        _, report = self.sweep("--mode", "nth", command=[CREATE_ONCE], expect=0)
        reached = [p for p in report["points"] if p["outcome"] != "not-reached"]
        self.assertGreaterEqual(len(reached), 5)
        self.assertEqual({p["outcome"] for p in reached}, {"clean"})
        self.assertEqual(report["isolation"]["kind"], "copy")
        self.assertEqual(os.listdir(self.cwd), [], "a run wrote into the starting directory")
        # Shared: the baseline made the file, so every point finds it and exits 3.
        _, shared = self.sweep("--mode", "nth", "--shared-cwd", "--max-points", "3",
                               command=[CREATE_ONCE], expect=0)
        self.assertEqual({p["outcome"] for p in shared["points"]}, {"handled"})
        self.assertEqual(shared["isolation"]["kind"], "shared")

    # ---- names -----------------------------------------------------------------------

    def test_names_without_debug_info_are_true_or_absent(self):
        # Without .symtab and debug info, main is covered by no symbol: its frames are '?',
        # not the nearest exported symbol; with .symtab left, main is named by it. Either
        # way one note names the module and how to get its debug info.
        for flag, function in (("--strip-all", None), ("--strip-debug", "main")):
            stripped = os.path.join(self.cwd, "target" + flag.replace("-", "_"))
            shutil.copy(TARGET, stripped)
            subprocess.run(["strip", flag, stripped], check=True)
            _, report = self.sweep("--mode", "callsite", command=[stripped], expect=1)
            crash = [p for p in report["points"] if p["outcome"] == "crash"][0]
            self.assertEqual((crash["function"], crash["source"]), (function, None), flag)
            self.assertEqual(crash["stack"][0]["function"], function, flag)
            notes = [n for n in report["notes"] if os.path.basename(stripped) in n]
            self.assertEqual(len(notes), 1, report["notes"])
            self.assertIn("-dbgsym", notes[0])
            self.assertIn("debuginfod", notes[0])
            os.unlink(stripped)

    # ---- coverage --------------------------------------------------------------------

    def test_coverage_scans_the_only_modules_too(self):
        _, r = self.sweep("--mode", "nth", "--max-points", "3", "--only",
                          f"{os.path.basename(TARGET)},libc.so.6", expect=0)
        scans = {s["module"]: s for s in r["coverage"]["allocation_calls"]}
        self.assertEqual(sorted(scans), sorted([os.path.basename(TARGET), "libc.so.6"]))
        self.assertGreater(scans["libc.so.6"]["calls"], 0)

    def test_coverage_lists_the_allocation_calls_no_point_failed(self):
        _, whole = self.sweep("--mode", "callsite", expect=1)
        scan = whole["coverage"]["allocation_calls"][0]
        self.assertEqual(scan["module"], os.path.basename(TARGET))
        # Every allocation in sweep_target.c is a call of its own, strdup's included.
        self.assertEqual(scan["calls"], whole["coverage"]["points_known"])
        self.assertEqual((scan["failed"], scan["unreached"]), (scan["calls"], []))
        html = self.path("coverage.html")
        _, part = self.sweep("--mode", "callsite", "--max-points", "3", "--html", html, expect=0)
        with open(html) as f:
            page = f.read()
        self.assertIn(f"3 of {scan['calls']} allocation calls in", page)
        self.assertIn("allocation calls no point failed", page)
        c = part["coverage"]
        self.assertEqual((c["points_run"], c["points_known"]), (3, scan["calls"]))
        scan = c["allocation_calls"][0]
        self.assertEqual(scan["failed"], 3)
        self.assertEqual(len(scan["unreached"]), scan["calls"] - 3)
        for u in scan["unreached"]:
            self.assertRegex(u["source"] or "", r"sweep_target\.c:\d+$", u)
            # The baseline records direct callers only: strdup's is libc, so the program's
            # call to it is seen only in a failed allocation's stack.
            if u["calls"] != "strdup":
                self.assertTrue(u["executed"], u)

    def test_workdir_template_and_the_size_cap(self):
        # The starting directory already holds the file; a template does not.
        with open(os.path.join(self.cwd, "created-by-run"), "w"):
            pass
        _, copied = self.sweep("--mode", "nth", "--max-points", "2", command=[CREATE_ONCE])
        self.assertEqual(copied["baseline"]["exit_status"], 3)
        template = self.path("template")
        os.mkdir(template)
        _, templ = self.sweep("--mode", "nth", "--max-points", "2", "--workdir-template",
                              template, command=[CREATE_ONCE], expect=0)
        self.assertEqual(templ["baseline"]["exit_status"], 0)
        self.assertEqual(templ["isolation"]["kind"], "template")
        self.assertEqual(os.listdir(template), [])
        # Past the cap (a sparse file counts its size): one line, exit 2, nothing runs.
        with open(os.path.join(self.cwd, "big"), "wb") as f:
            f.truncate(65 << 20)
        r, report = self.sweep("--mode", "nth", command=[CREATE_ONCE], expect=2)
        self.assertIsNone(report)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("--workdir-template", r.stderr)
        self.assertIn("--shared-cwd", r.stderr)

    # ---- scale -----------------------------------------------------------------------

    def test_shards_merge_to_the_whole(self):
        for mode in ("callsite", "nth"):
            _, whole = self.sweep("--mode", mode)
            parts = []
            for k in (1, 2):
                _, part = self.sweep("--mode", mode, "--shard", f"{k}/2")
                self.assertEqual(part["selection"]["shard"], f"{k}/2")
                parts.append(part)
            paths = []
            for i, part in enumerate(parts):
                paths.append(self.path(f"part{mode}{i}.json"))
                with open(paths[-1], "w") as f:
                    json.dump(part, f)
            merged_path = self.path(f"merged-{mode}.json")
            r = subprocess.run([ALLOCSCOPE, "sweep", "merge", merged_path, *paths],
                               capture_output=True, text=True, timeout=TIMEOUT, env=env())
            self.assertEqual(r.returncode, 1, r.stderr)  # the crash is in the merged report
            with open(merged_path) as f:
                merged = json.load(f)
            self.assertEqual(self.outcomes(merged), self.outcomes(whole), mode)
            self.assertEqual(merged["summary"]["points"], len(merged["points"]))

    def test_sample_is_seeded_and_reported(self):
        r, a = self.sweep("--mode", "nth", "--sample", "4", "--seed", "7")
        self.assertIn("a sample: 4 points drawn at random with seed 7", r.stdout)
        _, b = self.sweep("--mode", "nth", "--sample", "4", "--seed", "7")
        self.assertEqual(len(a["points"]), 4)
        self.assertEqual(self.outcomes(a), self.outcomes(b))
        self.assertEqual((a["selection"]["sample"], a["selection"]["seed"]), (4, 7))

    def test_resume_after_an_interrupted_sweep_runs_only_the_missing_points(self):
        # Each run sleeps a little, so the sweep is still going when it is interrupted.
        cmd = ["/bin/sh", "-c", "sleep 0.2"]
        partial_path = self.path("partial.json")
        p = subprocess.Popen([ALLOCSCOPE, "sweep", "--mode", "callsite", "--jobs", "1",
                              "--json", partial_path, "--", *cmd], env=env(), cwd=self.cwd,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=TIMEOUT)
        self.assertEqual(p.returncode, 130)
        with open(partial_path) as f:
            partial = json.load(f)
        self.assertFalse(partial["complete"])
        done = len(partial["points"])
        self.assertGreater(done, 0, "no point finished in 3 s")
        _, resumed = self.sweep("--mode", "callsite", "--resume", partial_path, command=cmd)
        self.assertTrue(resumed["complete"])
        self.assertEqual(resumed["selection"]["resumed_points"], done)
        total = len(resumed["points"])
        self.assertGreater(total, done)
        # Runs: the baseline and the missing points only.
        self.assertEqual(resumed["summary"]["runs"], 1 + total - done)
        self.assertTrue(set(self.outcomes(partial)) <= set(self.outcomes(resumed)))

    # ---- bad input -------------------------------------------------------------------

    def test_bad_input_is_one_line_and_status_2(self):
        cases = [
            (["--shard", "3/2"], "expected K/N"),
            (["--shard", "x"], "expected K/N"),
            (["--known", "/nonexistent/known"], "--known"),
            (["--workdir-template", "/nonexistent"], "not a directory"),
            (["--sample", "0"], "whole number"),
        ]
        for args, words in cases:
            r, _ = self.sweep(*args, expect=2)
            lines = r.stderr.strip().splitlines()
            self.assertTrue(any(words in l for l in lines), f"{args}: {r.stderr}")
        # Reports of two different sweeps do not merge.
        _, a = self.sweep("--mode", "nth", "--max-points", "1", command=[CREATE_ONCE])
        a_path = self.last_json
        _, b = self.sweep("--mode", "callsite", "--max-points", "1", command=[CREATE_ONCE])
        r = subprocess.run([ALLOCSCOPE, "sweep", "merge", self.path("m.json"), a_path,
                            self.last_json], capture_output=True, text=True, timeout=TIMEOUT,
                           env=env())
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
        self.assertIn("another command or mode", r.stderr)
        r, _ = self.sweep("--resume", a_path, "--shard", "1/2", expect=2)
        self.assertIn("--resume", r.stderr)
        r = subprocess.run([ALLOCSCOPE, "sweep", "--replay", "nth-1", "/nonexistent.json"],
                           capture_output=True, text=True, timeout=TIMEOUT, env=env())
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    ALLOCSCOPE, TARGET, CREATE_ONCE = (os.path.abspath(a) for a in sys.argv[1:4])
    unittest.main(argv=[sys.argv[0]] + sys.argv[4:])
