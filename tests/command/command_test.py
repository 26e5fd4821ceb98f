#!/usr/bin/python3
"""command_test.py ALLOCSCOPE PRELOAD: the allocscope binary, as a user meets it.

- Every bad --limit/--policy/--conf value (and a bad ALLOCSCOPE_CONF in the environment)
  exits 2 with the message the preload itself prints for that pair, and CMD never runs
  (it would create a file); --check validates and runs nothing.
- --version names the project version, the preload, and the jemalloc version inside it
  (the one mallctl("version") returns under the preload).
- --help, help VERB and VERB --help; --man is roff of the same text.
- 127 for a program not found, 126 for one that cannot be executed (run and sweep).
- run exits with CMD's status, and dies of CMD's signal (a shell sees 128+N).
- Usage errors exit 2: unknown verb or flag, another verb's flag, a bad flag value, no CMD.
- sweep: a point that sleeps past --timeout is a hang and its process group is killed;
  SIGINT and SIGTERM end a sweep with 130, kill its runs and remove its working directory;
  the HTML shows the command shell-quoted; --stdin is replayed to every run.
"""
import html
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ALLOCSCOPE = PRELOAD = None  # from the command line
TIMEOUT = 60


# Sweeps start each run in a copy of their working directory: the tests run them in an
# empty one (meson's own, the build tree, is far past the copy's size cap).
QUIET_DIR = tempfile.mkdtemp(prefix="allocscope-command-cwd-")


def run(args, env=None, **kw):
    kw.setdefault("cwd", QUIET_DIR)
    if "input" not in kw:
        kw.setdefault("stdin", subprocess.DEVNULL)  # not a terminal: sweeps save it
    return subprocess.run([ALLOCSCOPE] + args, capture_output=True, text=True, timeout=TIMEOUT,
                          env=env if env is not None else plain_env(), **kw)


def plain_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ALLOCSCOPE_CONF")}
    env.update(extra or {})
    return env


def preload_message(pair):
    """What the preload itself prints for a bad pair, after "allocscope: ALLOCSCOPE_CONF: "."""
    r = subprocess.run(["/bin/true"], capture_output=True, text=True, timeout=TIMEOUT,
                       env=plain_env({"LD_PRELOAD": PRELOAD, "ALLOCSCOPE_CONF": pair}))
    lines = [l for l in r.stderr.splitlines() if l.startswith("allocscope: ALLOCSCOPE_CONF: ")]
    assert len(lines) == 1, f"the preload printed {r.stderr!r} for {pair!r}"
    return lines[0][len("allocscope: ALLOCSCOPE_CONF: "):]


def processes_with(marker):
    """Pids whose command line holds `marker`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(pid))
    return found


class Configuration(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="allocscope-command-test-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.marker = os.path.join(self.dir, "ran")
        self.cmd = ["/bin/sh", "-c", f"touch {self.marker}"]

    def refused(self, args, pair, env=None, verb="run"):
        r = run([verb] + args + ["--"] + self.cmd, env=env)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertFalse(os.path.exists(self.marker), f"CMD ran despite {args}")
        expected = preload_message(pair)
        self.assertIn(expected, r.stderr)
        self.assertEqual(r.stdout, "")
        return r

    def test_bad_limits(self):
        for value in ("lots", "64MB", "1.5G", "-5"):
            with self.subTest(value=value):
                r = self.refused(["--limit", value], f"limit:{value}")
                self.assertIn(f"allocscope run: --limit: bad value '{value}' for key 'limit'",
                              r.stderr)

    def test_bad_policy(self):
        r = self.refused(["--policy", "nofial"], "policy:nofial")
        self.assertIn("allocscope run: --policy: bad value 'nofial' for key 'policy'", r.stderr)
        self.refused(["--policy", "nofail|kv|bogus"], "policy:nofail|kv|bogus")

    def test_bad_conf(self):
        self.refused(["--conf", "limit:lots"], "limit:lots")
        self.refused(["--conf", "no_such_key:1"], "no_such_key:1")
        self.refused(["--conf", "stats_print:true,kv_threshold:huge"], "kv_threshold:huge")
        self.refused(["--conf", "fault.nth:0"], "fault.nth:0", verb="sweep")

    def test_bad_environment_conf(self):
        r = self.refused([], "limit:lots", env=plain_env({"ALLOCSCOPE_CONF": "limit:lots"}))
        self.assertIn("allocscope run: ALLOCSCOPE_CONF: bad value 'lots'", r.stderr)

    def test_every_bad_pair_is_reported(self):
        r = run(["run", "--limit", "lots", "--policy", "nofial", "--conf", "warn:maybe", "--"]
                + self.cmd)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.splitlines()), 3, r.stderr)

    def test_a_shorthand_takes_one_pair(self):
        r = run(["run", "--limit", "64M,policy:nofail", "--"] + self.cmd)
        self.assertEqual(r.returncode, 2)
        self.assertFalse(os.path.exists(self.marker))
        self.assertIn("--limit takes one value", r.stderr)

    def test_check_runs_nothing(self):
        r = run(["run", "--check", "--limit", "64M", "--policy", "nofail|kv", "--"] + self.cmd)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(self.marker))
        self.assertEqual(run(["run", "--check", "--conf", "limit:1G"]).returncode, 0)
        self.assertEqual(run(["run", "--check", "--conf", "limit:lots"]).returncode, 2)
        self.assertEqual(run(["run", "--check", "--", "/nonexistent/program"]).returncode, 127)

    def test_good_configuration_runs(self):
        r = run(["run", "--limit", "64M", "--policy", "retry_mayfail", "--"] + self.cmd)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(self.marker))


class Conventions(unittest.TestCase):
    def test_version(self):
        r = run(["--version"])
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertRegex(lines[0], r"^allocscope \d+\.\d+\.\d+$")
        self.assertEqual(lines[1], f"preload {os.path.realpath(PRELOAD)}")
        # The jemalloc inside the preload, as mallctl("version") reports it under it.
        probe = ("import ctypes; lib = ctypes.CDLL(None); v = ctypes.c_char_p(); "
                 "n = ctypes.c_size_t(ctypes.sizeof(v)); "
                 "assert lib.mallctl(b'version', ctypes.byref(v), ctypes.byref(n), None, 0) == 0; "
                 "print(v.value.decode())")
        p = subprocess.run(["/usr/bin/python3", "-c", probe], capture_output=True, text=True,
                           timeout=TIMEOUT, env=plain_env({"LD_PRELOAD": PRELOAD}))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(lines[2], f"jemalloc {p.stdout.strip()}")

    def test_version_without_a_preload(self):
        r = run(["--version"], env=plain_env({"ALLOCSCOPE_LIB": "/nonexistent/lib.so"}))
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent/lib.so does not exist", r.stderr)

    def test_help(self):
        flags = {"run": ["--limit SIZE", "--policy FLAGS", "--stats", "--timeline FILE",
                         "--profile", "--conf STR", "--check"],
                 "sweep": ["--mode stack|nth|callsite", "--depth N", "--only MODULE,...",
                           "--persistent", "--ignore-output", "--gdb", "--jobs N", "--timeout S",
                           "--max-points N",
                           "--json FILE", "--html FILE", "--conf STR", "--stdin FILE", "--keep"],
                 # --json and --timeout here are other flags than sweep's (a bool; 5 s).
                 "top": ["--once"], "stats": ["--json"], "ctl": ["--timeout S"]}
        for verb, names in flags.items():
            for args in (["help", verb], [verb, "--help"], [verb, "-h"]):
                with self.subTest(args=args):
                    r = run(args)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertIn(f"Usage: allocscope {verb} ", r.stdout)
                    for name in names:
                        self.assertRegex(r.stdout, f"\n  {re.escape(name)}[ \n]")
                    for line in r.stdout.splitlines():
                        self.assertLessEqual(len(line), 80, line)
        r = run(["--help"])
        self.assertEqual(r.returncode, 0)
        for text in ("allocscope run", "allocscope sweep", "allocscope lib", "Exit status:",
                     "127", "ALLOCSCOPE_LIB", "allocscope top", "allocscope stats [FLAGS] PID",
                     "allocscope ctl [FLAGS] PID KEY:VALUE,..."):
            self.assertIn(text, r.stdout)
        self.assertEqual(run(["help"]).stdout, r.stdout)

    def test_man_page(self):
        r = run(["--man"])
        self.assertEqual(r.returncode, 0)
        self.assertTrue(r.stdout.startswith(".TH ALLOCSCOPE 1 "), r.stdout[:80])
        for text in (".SH SYNOPSIS", ".SH \"EXIT STATUS\"", ".B \\-\\-max\\-points N",
                     ".B \\-\\-limit SIZE", "allocscope lib"):
            self.assertIn(text, r.stdout)
        if shutil.which("groff"):
            g = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=r.stdout,
                               capture_output=True, text=True, timeout=TIMEOUT)
            self.assertEqual(g.returncode, 0, g.stderr)
            self.assertEqual(g.stderr, "", "groff warns about the man page")

    def test_usage_errors(self):
        for args in (["frobnicate"], ["help", "frobnicate"], [], ["run"], ["sweep"],
                     ["run", "--frob", "--", "true"], ["run", "--jobs", "2", "--", "true"],
                     ["sweep", "--jobs", "0", "--", "true"], ["sweep", "--mode", "all", "--", "true"],
                     ["sweep", "--timeout", "-1", "--", "true"], ["lib", "extra"],
                     ["sweep", "--stdin", "/nonexistent", "--", "true"],
                     ["sweep", "--json", "/nonexistent/dir/r.json", "--", "true"],
                     ["stats"], ["stats", "12x"], ["stats", "1", "--json"], ["ctl", "1"],
                     ["ctl", "--timeout", "0", "1", "limit:1G"], ["top", "extra"]):
            with self.subTest(args=args):
                r = run(args)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertTrue(r.stderr.strip(), "no message")

    def test_lib(self):
        r = run(["lib"])
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, os.path.realpath(PRELOAD) + "\n")


class ExitStatus(unittest.TestCase):
    def script(self, text, mode):
        """A file holding `text` with permissions `mode`, in a directory of its own."""
        d = tempfile.mkdtemp(prefix="allocscope-command-test-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "script")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def test_not_found_is_127(self):
        for verb in ("run", "sweep"):
            for program in ("/nonexistent/program", "allocscope-no-such-program"):
                with self.subTest(verb=verb, program=program):
                    r = run([verb, "--", program])
                    self.assertEqual(r.returncode, 127, r.stderr)
                    self.assertIn(program, r.stderr)
        self.assertIn("allocscope-no-such-program: command not found",
                      run(["run", "--", "allocscope-no-such-program"]).stderr)
        # A script whose interpreter is missing: 127, as bash and dash say.
        script = self.script("#!/nonexistent/interpreter\n", 0o755)
        self.assertEqual(run(["run", "--", script]).returncode, 127)

    def test_not_executable_is_126(self):
        plain = self.script("#!/bin/sh\ntouch ran\n", 0o644)
        directory = os.path.dirname(plain)
        for verb in ("run", "sweep"):
            for program, why in ((plain, "Permission denied"), (directory, "Is a directory")):
                with self.subTest(verb=verb, program=program):
                    r = run([verb, "--", program])
                    self.assertEqual(r.returncode, 126, r.stderr)
                    self.assertIn(why, r.stderr)

    def test_run_propagates_the_exit_status(self):
        for status in (0, 1, 7, 255):
            r = run(["run", "--", "/bin/sh", "-c", f"exit {status}"])
            self.assertEqual(r.returncode, status, r.stderr)

    def test_run_dies_of_the_programs_signal(self):
        r = run(["run", "--", "/bin/sh", "-c", "kill -SEGV $$"])
        self.assertEqual(r.returncode, -signal.SIGSEGV)
        # As a shell reports it: 128+N.
        line = f"{shlex.quote(ALLOCSCOPE)} run -- /bin/sh -c 'kill -TERM $$'; echo $?"
        s = subprocess.run(["/bin/sh", "-c", line], capture_output=True, text=True,
                           timeout=TIMEOUT, env=plain_env())
        self.assertEqual(s.stdout.strip(), str(128 + signal.SIGTERM))


class SweepRuns(unittest.TestCase):
    """A program that sleeps whenever it runs as a sweep point (fault.nth in its
    configuration) and exits at once in the baseline. fault.size_min:1G makes no
    allocation eligible, so nothing fails and the sleep is always reached."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="allocscope-command-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.marker = f"{60 + os.getpid() % 1000 / 1000:.3f}"  # sleep's argument, unique
        self.cmd = ["/bin/sh", "-c",
                    f'case "$ALLOCSCOPE_CONF" in *fault.nth*) sleep {self.marker};; esac']
        self.env = plain_env({"TMPDIR": self.tmp})

    def sweep_args(self, *extra):
        return ["sweep", "--mode", "nth", "--conf", "fault.size_min:1G", *extra, "--"] + self.cmd

    def test_a_point_past_the_timeout_is_a_hang_and_its_group_is_killed(self):
        report_path = os.path.join(self.tmp, "r.json")
        html_path = os.path.join(self.tmp, "r.html")
        start = time.monotonic()
        r = run(self.sweep_args("--timeout", "1", "--max-points", "2", "--json", report_path,
                                "--html", html_path), env=self.env)
        # A hang fails the sweep's gate (no --known lists it).
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertLess(time.monotonic() - start, 30)
        with open(report_path) as f:
            report = json.load(f)
        self.assertEqual([p["outcome"] for p in report["points"]], ["hang", "hang"])
        self.assertTrue(all(p["timed_out"] and p["signal"] is None for p in report["points"]))
        self.assertEqual(processes_with(f"sleep {self.marker}"), [])
        # The saved stdin the replay lines read stays beside the report; the runs go.
        self.assertEqual(sorted(os.listdir(self.tmp)), ["r.html", "r.json", "r.json.stdin"],
                         "the runs were not removed")
        with open(html_path) as f:
            title = re.search(r"<h1>allocscope sweep: <code>(.*)</code></h1>", f.read()).group(1)
        self.assertEqual(shlex.split(html.unescape(title)), self.cmd)

    def test_stdin_is_replayed_from_a_file(self):
        data = os.path.join(self.tmp, "in.txt")
        with open(data, "w") as f:
            f.write("replayed to every run\n")
        report_path = os.path.join(self.tmp, "r.json")
        r = run(["sweep", "--max-points", "2", "--stdin", data, "--json", report_path, "--",
                 "/bin/cat"], env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(report_path) as f:
            report = json.load(f)
        self.assertEqual(report["baseline"]["stdout"], "replayed to every run\n")
        self.assertEqual(len(report["points"]), 2)

    def interrupt(self, signum):
        p = subprocess.Popen([ALLOCSCOPE] + self.sweep_args("--timeout", "60"), env=self.env,
                             cwd=QUIET_DIR,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in p.stderr:
            if "baseline:" in line:
                break
        deadline = time.monotonic() + 10
        while not processes_with(f"sleep {self.marker}") and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(processes_with(f"sleep {self.marker}"), "no point started")
        start = time.monotonic()
        p.send_signal(signum)
        out, err = p.communicate(timeout=TIMEOUT)
        self.assertLess(time.monotonic() - start, 10)
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("allocscope sweep: interrupted", err)
        # The partial report: the points that finished (none here: the one run was killed).
        self.assertIn("0 points: none", out)
        self.assertEqual(processes_with(f"sleep {self.marker}"), [])
        self.assertEqual(os.listdir(self.tmp), [], "the working directory was left behind")

    def test_sigint_kills_the_runs(self):
        self.interrupt(signal.SIGINT)

    def test_sigterm_kills_the_runs(self):
        self.interrupt(signal.SIGTERM)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ALLOCSCOPE, PRELOAD = os.path.abspath(sys.argv[1]), sys.argv[2]
    try:
        unittest.main(argv=[sys.argv[0]] + sys.argv[3:])
    finally:
        shutil.rmtree(QUIET_DIR, True)
