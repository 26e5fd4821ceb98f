#!/usr/bin/python3
"""Debian's perl under the preload: `perl workload.pl`.

workload.pl fills and empties big hashes and nested structures, sorts arrays of
numbers and strings, builds multi-megabyte strings, runs global regex matches and
substitutions, closures and objects, and prints deterministic results with MD5 digests
(Perl's per-process hash order never reaches the output). The output must be
byte-identical with and without the preload, exit status 0 and stderr empty on both
sides.
"""
import os
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import integ_common as ic  # noqa: E402

PERL = "/usr/bin/perl"
SCRIPT = os.path.join(ic.HERE, "workload.pl")
TIMEOUT = 180


class PerlWorkload(unittest.TestCase):
    def run_side(self, pre):
        argv = [PERL, SCRIPT]
        pid, rc, out, err = ic.run(pre.cmd(argv) if pre else argv, ic.plain_env(), TIMEOUT,
                                   stdin=subprocess.DEVNULL)
        side = "preloaded" if pre else "plain"
        self.assertEqual(rc, 0, f"{side} perl exited {rc}; stderr:\n{ic.tail(err)}")
        return pid, out, err

    def test_same_output(self):
        pre = ic.Preloaded(self, "perl")
        pid, out_pre, err_pre = self.run_side(pre)
        st = pre.check_active(pid)
        pre.check_reports(err_pre)
        print(f"preloaded perl heap: {st['heap']}", file=sys.stderr)
        # The workload went through the preload, not just startup (about 2,000). nmalloc
        # counts jemalloc's bin-level allocations (tcache fills), not every malloc call.
        self.assertGreater(st["heap"]["nmalloc"], 10000)

        _, out_plain, err_plain = self.run_side(None)
        self.assertEqual(err_plain, b"", "the workload itself wrote to stderr")
        self.assertTrue(out_plain.endswith(b"done\n"), ic.tail(out_plain))
        self.assertEqual(err_pre, err_plain)
        self.assertEqual(out_pre.decode("utf-8", "replace").splitlines(),
                         out_plain.decode("utf-8", "replace").splitlines())
        self.assertEqual(out_pre, out_plain)


if __name__ == "__main__":
    ic.require_programs(PERL)
    ic.main()
