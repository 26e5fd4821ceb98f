#!/usr/bin/python3
"""The `allocscope run` launcher with real Debian programs.

- Children inherit the preload: `allocscope run -- /bin/sh -c 'cd / && python3 -c ...'`
  (and the same with bash); the child python (after a chdir, so the library path must
  be absolute) resolves allocscope_active() == 1 through ctypes in the global scope,
  sees LD_PRELOAD and ALLOCSCOPE_CONF, and writes its own stats file; bash writes one
  too (dash cannot: it ends with _exit()). Without the launcher the probe cannot
  resolve allocscope_active.
- An LD_PRELOAD and an ALLOCSCOPE_CONF already in the environment are kept, after
  allocscope's library and before --conf respectively.
- A statically linked program (static_hello.c, built with -static) gets the launcher's
  warning, still runs, and writes no stats file; a dynamic one gets no warning.
- A setuid program gets the secure-execution warning.
"""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import integ_common as ic  # noqa: E402

PYTHON = "/usr/bin/python3"
SH = "/bin/sh"      # dash on Debian
BASH = "/bin/bash"
TIMEOUT = 60

# Runs in the grandchild: what it sees of the preload, as one JSON line.
PROBE = """
import ctypes, json, os
lib = ctypes.CDLL(None)
try:
    active = lib.allocscope_active()
    version = ctypes.cast(lib.allocscope_version, ctypes.CFUNCTYPE(ctypes.c_char_p))().decode()
except AttributeError:
    active = version = None
print(json.dumps({"pid": os.getpid(), "cwd": os.getcwd(), "active": active,
                  "version": version, "ld_preload": os.environ.get("LD_PRELOAD"),
                  "conf": os.environ.get("ALLOCSCOPE_CONF")}))
"""


def shell_line():
    # The trailing echo keeps the shell alive (no exec of its last command), so the
    # probe is a child of the shell, a grandchild of the launcher's process.
    return f"cd / && {PYTHON} -c '{PROBE}' && echo \"shell $$\""


def library():
    r = subprocess.run([ic.LAUNCHER, "lib"], env=ic.plain_env(), capture_output=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


class Launcher(unittest.TestCase):
    def probe_output(self, out):
        lines = out.decode().splitlines()
        self.assertEqual(len(lines), 2, lines)
        probe = json.loads(lines[0])
        self.assertTrue(lines[1].startswith("shell "), lines)
        return probe, int(lines[1].split()[1])

    def children_inherit_preload(self, shell):
        pre = ic.Preloaded(self, "launcher")
        lib = library()
        self.assertTrue(os.path.isabs(lib) and os.path.isfile(lib), lib)
        pid, rc, out, err = ic.run(pre.cmd([shell, "-c", shell_line()]), ic.plain_env(), TIMEOUT,
                                   stdin=subprocess.DEVNULL)
        self.assertEqual(rc, 0, err)
        pre.check_reports(err)
        probe, shell_pid = self.probe_output(out)
        self.assertEqual(shell_pid, pid, "the launcher did not exec the command in place")
        self.assertNotEqual(probe["pid"], pid)
        self.assertEqual(probe["cwd"], "/")
        self.assertEqual(probe["active"], 1, probe)
        self.assertTrue(probe["version"], probe)
        self.assertEqual(probe["ld_preload"], lib)
        # allocscope run puts control:true first (the live page; later pairs may turn it off).
        self.assertEqual(probe["conf"], f"control:true,{pre.conf}")
        pre.check_active(probe["pid"])     # the shell's child, after a chdir
        return pre, pid, probe

    def test_children_inherit_preload_sh(self):
        # dash ends with _exit(), so no destructor runs in it and it writes no stats
        # file; only its child's is checked.
        pre, pid, probe = self.children_inherit_preload(SH)
        self.assertIn(probe["pid"], pre.all_stats())

    def test_children_inherit_preload_bash(self):
        if not os.access(BASH, os.X_OK):
            self.skipTest("no bash")
        pre, pid, probe = self.children_inherit_preload(BASH)
        pre.check_active(pid)              # the shell itself
        self.assertEqual(set(pre.all_stats()), {pid, probe["pid"]})

    def test_without_launcher_not_active(self):
        # The control: the probe must be able to tell the difference.
        pid, rc, out, err = ic.run([SH, "-c", shell_line()], ic.plain_env(), TIMEOUT,
                                   stdin=subprocess.DEVNULL)
        self.assertEqual(rc, 0, err)
        probe, _ = self.probe_output(out)
        self.assertIsNone(probe["active"], probe)
        self.assertIsNone(probe["ld_preload"], probe)

    def test_existing_environment_kept(self):
        pre = ic.Preloaded(self, "launcher-env")
        lib = library()
        other = "/lib/x86_64-linux-gnu/libm.so.6"
        if not os.path.isfile(other):
            self.skipTest(f"{other} is not there")
        env = ic.plain_env({"LD_PRELOAD": other, "ALLOCSCOPE_CONF": "strict:false"})
        pid, rc, out, err = ic.run(pre.cmd([BASH, "-c", shell_line()]), env, TIMEOUT,
                                   stdin=subprocess.DEVNULL)
        self.assertEqual(rc, 0, err)
        probe, _ = self.probe_output(out)
        self.assertEqual(probe["active"], 1, probe)
        self.assertEqual(probe["ld_preload"], f"{lib} {other}")
        self.assertEqual(probe["conf"], f"control:true,strict:false,{pre.conf}")
        pre.check_active(pid)
        pre.check_active(probe["pid"])

    def test_static_binary_warning(self):
        static = ic.OPTIONS["static_binary"]
        self.assertTrue(static and os.access(static, os.X_OK), f"no static test binary: {static}")
        if shutil.which("file"):
            kind = subprocess.run(["file", "-b", static], capture_output=True, timeout=TIMEOUT)
            self.assertIn(b"statically linked", kind.stdout, "the test binary is not static")
        pre = ic.Preloaded(self, "launcher-static")
        pid, rc, out, err = ic.run(pre.cmd([static]), ic.plain_env(), TIMEOUT,
                                   stdin=subprocess.DEVNULL)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, b"static hello\n")
        self.assertIn(f"allocscope: {static} is statically linked".encode(), err)
        self.assertIn(b"LD_PRELOAD has no effect", err)
        self.assertEqual(os.listdir(pre.dir), [], "a static binary cannot have run the preload")

    def test_dynamic_binary_no_warning(self):
        pre = ic.Preloaded(self, "launcher-dynamic")
        pid, rc, out, err = ic.run(pre.cmd(["true"]), ic.plain_env(), TIMEOUT,
                                   stdin=subprocess.DEVNULL)
        self.assertEqual(rc, 0, err)
        self.assertEqual(err, b"")
        pre.check_active(pid)

    def test_setuid_binary_warning(self):
        d = tempfile.mkdtemp(prefix="allocscope-integ-setuid-")
        self.addCleanup(shutil.rmtree, d, True)
        exe = os.path.join(d, "true-setuid")
        shutil.copy("/bin/true", exe)
        os.chmod(exe, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
                 | stat.S_ISUID)
        pid, rc, out, err = ic.run([ic.LAUNCHER, "run", "--", exe], ic.plain_env(), TIMEOUT,
                                   stdin=subprocess.DEVNULL)
        self.assertEqual(rc, 0, err)
        self.assertIn(f"allocscope: {exe} is setuid/setgid".encode(), err)


if __name__ == "__main__":
    ic.main(["--static-binary"])
