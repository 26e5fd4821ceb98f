#!/usr/bin/python3
"""Debian's CPython test suite (a quick selection of regrtest modules) under the preload.

Runs `/usr/bin/python3 -m test -v MODULES` with and without the preload and compares:
exit status 0 on both sides, "Tests result: SUCCESS", the per-module counts ("Ran N
tests", "OK (skipped=K)"), every test id run and the tally of outcomes. The modules
cover dicts, lists, bytes, sets, str, collections, json, re, sorting, deques, threads,
the garbage collector, mmap, ctypes and subprocess (fork/exec from a threaded process);
the children that regrtest and the tests spawn inherit the preload and each write their
own stats file.
"""
import collections
import re
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import integ_common as ic  # noqa: E402

PYTHON = "/usr/bin/python3"
MODULES = [
    "test_dict", "test_list", "test_bytes", "test_set", "test_unicode",
    "test_collections", "test_json", "test_re", "test_sort", "test_deque",
    "test_threading", "test_gc", "test_mmap", "test_ctypes", "test_subprocess",
]
# Timing tests that fail on a loaded machine, with or without the preload (meson runs
# tests in parallel): this one gives a SIGKILLed child 0.2 s to be reaped. Skipped on both
# sides, so the comparison stays exact.
IGNORED = ["test_leak_fast_process_del_killed"]
TIMEOUT = 420  # seconds per side; about 60 s on an idle 2-core machine

MODULE_LINE = re.compile(r"^\d+:\d\d:\d\d (?:load avg: [\d.]+ )?\[\s*\d+/\d+\] (test_\w+)")
TEST_ID = re.compile(r"^(\w+) \((test\.[\w.]+)\)")
OUTCOMES = r"(ok|skipped\b.*|expected failure|unexpected success|FAIL|ERROR)"
# The outcome ends the test's line, or, when the test (or a child process) wrote
# something in between, a later line of its own.
OUTCOME_SAME_LINE = re.compile(r" \.\.\. " + OUTCOMES + r"$")
OUTCOME_OWN_LINE = re.compile(r"^" + OUTCOMES + r"$")


def summarize(text):
    """What has to be equal between the two runs, taken from regrtest's verbose output."""
    per_module = collections.OrderedDict()  # module -> ["Ran N tests", "OK (skipped=K)"]
    ids = []
    outcomes = collections.Counter()
    module = None
    pending = False  # a test id seen whose outcome has not been
    for line in text.splitlines():
        m = MODULE_LINE.match(line)
        if m:
            module = m.group(1)
            per_module[module] = []
            pending = False
            continue
        if module is None:
            continue
        if re.match(r"^Ran \d+ tests? in ", line):
            per_module[module].append(line.split(" in ")[0])
        elif re.match(r"^(OK|FAILED)\b", line):
            per_module[module].append(line)
        m = TEST_ID.match(line)
        if m:
            ids.append(f"{module}: {m.group(2)}")
            pending = True
        m = OUTCOME_SAME_LINE.search(line) or (pending and OUTCOME_OWN_LINE.match(line))
        if m and pending:
            outcomes[m.group(1).split(" ")[0]] += 1
            pending = False
    final = [l for l in text.splitlines()
             if re.match(r"^(All \d+ tests OK\.|Tests result: \w+|\d+ tests? (failed|skipped))", l)]
    return {"modules": per_module, "ids": sorted(ids), "outcomes": dict(outcomes), "final": final}


def failures(text):
    """The FAIL:/ERROR: sections of unittest's output, with their tracebacks."""
    blocks = re.findall(r"^={50,}\n(?:FAIL|ERROR): .*?(?=^={50,}$|^-{50,}\nRan )", text,
                        re.M | re.S)
    return "\n".join(blocks)[-20000:]


class PythonRegrtest(unittest.TestCase):
    def run_side(self, pre):
        argv = [PYTHON, "-m", "test", "-v"]
        for pattern in IGNORED:
            argv += ["--ignore", pattern]
        argv += MODULES
        cmd = pre.cmd(argv) if pre else argv
        env = ic.plain_env()
        pid, rc, out, _ = ic.run(cmd, env, TIMEOUT, stdin=subprocess.DEVNULL,
                                 merge_stderr=True)
        text = out.decode("utf-8", "replace")
        side = "preloaded" if pre else "plain"
        self.assertEqual(rc, 0, f"{side} regrtest exited {rc}:\n{failures(text)}\n"
                                f"{ic.tail(text, 30)}")
        self.assertIn("Tests result: SUCCESS", text, f"{side}:\n{ic.tail(text, 80)}")
        if pre:
            pre.check_reports(text)
        return pid, summarize(text)

    def test_regrtest_same_results(self):
        pre = ic.Preloaded(self, "python")
        pid, with_preload = self.run_side(pre)
        pre.check_active(pid)
        everything = pre.all_stats()
        # regrtest itself and at least the script_helper/subprocess children.
        self.assertGreater(len(everything), 1,
                           f"only {list(everything)} wrote stats: children did not inherit the preload")
        print(f"preloaded: {len(everything)} processes wrote stats; main process heap "
              f"{everything[pid]['heap']}", file=sys.stderr)

        _, without = self.run_side(None)

        self.assertEqual(list(with_preload["modules"]), MODULES)
        self.assertEqual(with_preload["modules"], without["modules"])
        for module, lines in with_preload["modules"].items():
            self.assertTrue(any(l.startswith("Ran ") for l in lines), f"{module}: {lines}")
            self.assertTrue(any(l.startswith("OK") for l in lines), f"{module}: {lines}")
        self.assertEqual(with_preload["final"], without["final"])
        self.assertIn(f"All {len(MODULES)} tests OK.", with_preload["final"])
        self.assertEqual(sum(without["outcomes"].values()), len(without["ids"]),
                         "the output parser lost track of some outcomes")
        self.assertEqual(with_preload["outcomes"], without["outcomes"])
        self.assertGreater(with_preload["outcomes"].get("ok", 0), 1000)
        self.assertEqual(with_preload["ids"], without["ids"])


if __name__ == "__main__":
    ic.main()
