#!/usr/bin/env python3
"""expect.py: run one command and check how it ended.

  expect.py [--status N] [--stdout-has S]... [--stderr-has S]... [--stderr-lacks S]...
            [--stderr-matches RE]... [--same-as-unpreloaded | --unpreloaded] -- CMD [ARGS...]

The command runs with the environment meson gives the test (LD_PRELOAD set), or with
LD_PRELOAD removed for --unpreloaded.
--same-as-unpreloaded also runs it without LD_PRELOAD and requires identical stdout
(the program's own preload check is skipped there by ALLOCSCOPE_TEST_UNPRELOADED=1).
Exits 0 if every expectation holds, 1 with the reasons otherwise.
"""
import argparse
import os
import re
import subprocess
import sys


def run(cmd, env):
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--status", type=int, default=0)
    ap.add_argument("--stdout-has", action="append", default=[])
    ap.add_argument("--stderr-has", action="append", default=[])
    ap.add_argument("--stderr-lacks", action="append", default=[])
    ap.add_argument("--stderr-matches", action="append", default=[])
    ap.add_argument("--same-as-unpreloaded", action="store_true")
    ap.add_argument("--unpreloaded", action="store_true")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if "LD_PRELOAD" not in os.environ:
        sys.exit("expect.py: LD_PRELOAD is not set; this test must run under the preload")
    env = dict(os.environ)
    if args.unpreloaded:
        del env["LD_PRELOAD"]
    result = run(cmd, env)
    problems = []
    if result.returncode != args.status:
        problems.append(f"exit status {result.returncode}, expected {args.status}")
    problems += [f"stdout lacks {s!r}" for s in args.stdout_has if s not in result.stdout]
    problems += [f"stderr lacks {s!r}" for s in args.stderr_has if s not in result.stderr]
    problems += [f"stderr has {s!r}" for s in args.stderr_lacks if s in result.stderr]
    problems += [f"stderr does not match {r!r}" for r in args.stderr_matches
                 if not re.search(r, result.stderr)]
    if args.same_as_unpreloaded:
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        env["ALLOCSCOPE_TEST_UNPRELOADED"] = "1"
        plain = run(cmd, env)
        if plain.stdout != result.stdout:
            problems.append(f"stdout differs without the preload:\n{plain.stdout}")
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    for p in problems:
        print(f"FAIL: {' '.join(cmd)}: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
