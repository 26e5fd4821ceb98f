"""integ_common.py: shared helpers of the integration tests (tests/integration/test_*.py).

Every test runs a real Debian program twice: once through the launcher
(`allocscope run --conf STR -- CMD ...`) and once plainly, then compares the two.
The preloaded run writes a stats file per process (stats_file with %p);
`Preloaded.check_active(pid)` fails the test
unless the main process's stats file exists and shows allocations, so a launcher or
preload that silently did nothing can never pass.

Scripts take `--allocscope PATH` (the built launcher; meson passes it) before the usual
unittest arguments, e.g.:
  /usr/bin/python3 tests/integration/test_sqlite3.py --allocscope build/scripts/allocscope -v
ALLOCSCOPE_LIB, when set, is passed through: the launcher then preloads that library.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCHER = None  # set by main()
OPTIONS = {}     # the extra options a script asked main() for, e.g. {"static_binary": PATH}

# Exit status meson reads as "skipped".
SKIP = 77


def require_programs(*names):
    """Exits with SKIP (77) unless every program exists: the test needs a Debian package."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        print(f"SKIP: not installed: {' '.join(missing)}", file=sys.stderr)
        sys.exit(SKIP)


def plain_env(extra=None):
    """The environment of a run without the preload: nothing of allocscope's left in it."""
    env = dict(os.environ)
    for var in ("LD_PRELOAD", "ALLOCSCOPE_CONF"):
        env.pop(var, None)
    env.update(extra or {})
    return env


def run(cmd, env, timeout, stdin=None, cwd=None, merge_stderr=False):
    """Runs cmd with a bounded wait; returns (pid, returncode, stdout, stderr) as bytes.

    On timeout the whole process group is killed and the test fails."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=stdin,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(f"timed out after {timeout}s: {cmd}\n--- output tail ---\n"
                             f"{tail(out)}\n{tail(err)}")
    return proc.pid, proc.returncode, out, err or b""


def kill_group(proc):
    """SIGKILLs proc's process group (it was started with start_new_session) and reaps proc."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def tail(data, lines=40):
    if not data:
        return ""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return "\n".join(text.splitlines()[-lines:])


class Preloaded:
    """A temporary directory for one preloaded run, and the stats files written there.

    The configuration is only stats_file (one file per process, "%p" = pid). Reports
    stay on stderr, where check_reports() looks for them: a log_file would hold a
    descriptor open in every process, which programs that audit their descriptors
    (CPython's test_subprocess does) would see."""

    def __init__(self, testcase, name="preloaded", extra_conf=""):
        self.tc = testcase
        self.dir = tempfile.mkdtemp(prefix=f"allocscope-integ-{name}-")
        testcase.addCleanup(shutil.rmtree, self.dir, True)
        # Like /tmp: children that switch to another user (CPython's test_subprocess runs
        # some as nobody) must still be able to write their stats there.
        os.chmod(self.dir, 0o1777)
        if any(c in self.dir for c in ",:"):
            raise RuntimeError(f"temporary directory {self.dir} cannot go in ALLOCSCOPE_CONF")
        self.conf = f"stats_file:{self.dir}/stats.%p.json"
        if extra_conf:
            self.conf += "," + extra_conf

    def cmd(self, argv):
        return [LAUNCHER, "run", "--conf", self.conf, "--"] + list(argv)

    def stats_path(self, pid):
        return os.path.join(self.dir, f"stats.{pid}.json")

    def stats(self, pid):
        """The parsed stats of process pid; fails the test if there are none."""
        path = self.stats_path(pid)
        self.tc.assertTrue(
            os.path.isfile(path),
            f"no stats file {path}: the preload was not active in process {pid} "
            f"(files there: {sorted(os.listdir(self.dir))})")
        with open(path) as f:
            text = f.read()
        try:
            return json.loads(text)["allocscope"]
        except (ValueError, KeyError) as e:
            self.tc.fail(f"{path} is not allocscope's stats JSON ({e}): {text[:500]!r}")

    def check_active(self, pid):
        """Asserts that process pid ran under the preload and allocated through it."""
        st = self.stats(pid)
        self.tc.assertEqual(st.get("pid"), pid, f"stats file of {pid} names another pid: {st}")
        heap = st.get("heap", {})
        self.tc.assertGreater(heap.get("nmalloc", 0), 0, f"process {pid}: no allocations seen: {st}")
        return st

    def all_stats(self):
        """{pid: stats} for every process that wrote a stats file; each must be valid."""
        result = {}
        for name in sorted(os.listdir(self.dir)):
            if name.startswith("stats.") and name.endswith(".json"):
                pid = int(name[len("stats."):-len(".json")])
                result[pid] = self.stats(pid)
        return result

    def check_reports(self, output):
        """Prints allocscope's reports found in output (bytes or str); fails on one saying
        the preload was inactive. Returns the report lines."""
        text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
        lines = [l for l in text.splitlines() if l.startswith("allocscope: ")]
        for line in lines:
            print(f"report from the preload: {line}", file=sys.stderr)
            self.tc.assertNotIn("inactive", line)
        return lines


def main(extra_options=()):
    """Parses --allocscope PATH (and extra_options, each "--name VALUE", into OPTIONS),
    then runs the script's unittest tests with the remaining arguments."""
    global LAUNCHER
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--allocscope", required=True, help="path of the built allocscope command")
    for opt in extra_options:
        parser.add_argument(opt)
    args, rest = parser.parse_known_args()
    OPTIONS.update({k: v for k, v in vars(args).items() if k != "allocscope"})
    LAUNCHER = os.path.abspath(args.allocscope)
    if not os.access(LAUNCHER, os.X_OK):
        sys.exit(f"{LAUNCHER} is not an executable allocscope command")
    unittest.main(module="__main__", argv=[sys.argv[0]] + rest, verbosity=2)
