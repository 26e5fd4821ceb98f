#!/usr/bin/python3
"""Debian's sqlite3 shell under the preload: `sqlite3 :memory: < workload.sql`.

workload.sql builds tables from recursive CTEs (35,000 rows), indexes them, joins,
groups, runs window functions, a transaction with savepoints and rollbacks, text, JSON,
FTS5 and R*Tree work, and prints deterministic results and SHA3 checksums. Debian's
sqlite3 uses the system malloc directly (SYSTEM_MALLOC, OMIT_LOOKASIDE). The output
must be byte-identical with and without the preload, exit status 0 and stderr empty
on both sides.
"""
import os
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import integ_common as ic  # noqa: E402

SQLITE3 = "/usr/bin/sqlite3"
SCRIPT = os.path.join(ic.HERE, "workload.sql")
TIMEOUT = 120


class Sqlite3Workload(unittest.TestCase):
    def run_side(self, pre):
        argv = [SQLITE3, ":memory:"]
        with open(SCRIPT, "rb") as script:
            pid, rc, out, err = ic.run(pre.cmd(argv) if pre else argv, ic.plain_env(), TIMEOUT,
                                       stdin=script)
        side = "preloaded" if pre else "plain"
        self.assertEqual(rc, 0, f"{side} sqlite3 exited {rc}; stderr:\n{ic.tail(err)}")
        return pid, out, err

    def test_same_output(self):
        pre = ic.Preloaded(self, "sqlite3")
        pid, out_pre, err_pre = self.run_side(pre)
        st = pre.check_active(pid)
        pre.check_reports(err_pre)
        print(f"preloaded sqlite3 heap: {st['heap']}", file=sys.stderr)
        # The workload went through the preload, not just startup (about 2,000). nmalloc
        # counts jemalloc's bin-level allocations (tcache fills), not every malloc call.
        self.assertGreater(st["heap"]["nmalloc"], 10000)

        _, out_plain, err_plain = self.run_side(None)
        self.assertEqual(err_plain, b"", "the workload itself wrote to stderr")
        self.assertTrue(out_plain.endswith(b"integrity|ok\n" + out_plain.splitlines(True)[-2]
                                           + b"done\n"), ic.tail(out_plain))
        self.assertGreater(len(out_plain.splitlines()), 80)
        self.assertEqual(err_pre, err_plain)
        self.assertEqual(out_pre.decode("utf-8", "replace").splitlines(),
                         out_plain.decode("utf-8", "replace").splitlines())
        self.assertEqual(out_pre, out_plain)


if __name__ == "__main__":
    ic.require_programs(SQLITE3)
    ic.main()
