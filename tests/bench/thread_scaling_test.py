#!/usr/bin/python3
"""thread_scaling_test.py LIB THREAD_CHURN: a thread's start and exit cost the same however
many threads live (issue 13, item 13: they were O(live threads) under one global mutex).

Instructions, not time: thread_churn runs under callgrind (deterministic), and the cost of
one create+join is the difference between two runs of different lengths. Compared at 8 and
at 400 idle live threads, with no configuration (start only registers the thread) and with
a limit (each thread joins the budget). Before the fix a start walked every live thread:
a create+join at 400 live threads cost several times what it cost at 8."""
import os
import re
import subprocess
import sys
import tempfile

lib, churn = sys.argv[1], sys.argv[2]
CYCLES = (50, 150)
LIVE = (8, 400)
# Allowed growth from 8 to 400 live threads: jemalloc's and glibc's own costs move a
# little with the number of threads (arena choice, stack cache); a walk over 400 threads
# per start or exit would be far above this.
MAX_RATIO = 1.3


def instructions(conf, live, cycles, work):
    out = os.path.join(work, f"cg.{live}.{cycles}")
    env = dict(os.environ, LD_PRELOAD=lib, ALLOCSCOPE_CONF=conf)
    r = subprocess.run(["valgrind", "--tool=callgrind", "--max-threads=600",
                        f"--callgrind-out-file={out}", churn, str(live), str(cycles)],
                       env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        sys.exit(f"thread_churn {live} {cycles} under callgrind: status {r.returncode}\n{r.stderr[-2000:]}")
    with open(out) as f:
        m = re.search(r"^summary: (\d+)", f.read(), re.M)
    return int(m.group(1))


failed = False
with tempfile.TemporaryDirectory() as work:
    for conf in ("", "limit:4G"):
        per = {}
        for live in LIVE:
            a, b = (instructions(conf, live, c, work) for c in CYCLES)
            per[live] = (b - a) / (CYCLES[1] - CYCLES[0])
        ratio = per[LIVE[1]] / per[LIVE[0]]
        name = conf or "no configuration"
        print(f"{name}: {per[LIVE[0]]:.0f} instructions per create+join at {LIVE[0]} live "
              f"threads, {per[LIVE[1]]:.0f} at {LIVE[1]} ({ratio:.2f}x)")
        if ratio > MAX_RATIO:
            print(f"FAIL: {name}: a thread's start and exit grow with the live threads "
                  f"({ratio:.2f}x from {LIVE[0]} to {LIVE[1]}, at most {MAX_RATIO}x allowed)")
            failed = True
sys.exit(1 if failed else 0)
