#!/usr/bin/env python3
"""profile_cost.py BUILD_DIR [RUNS]: what `allocscope run --profile` (jemalloc's heap
profiler, a sample every 512 KiB) costs on malloc-heavy workloads: each workload runs
under `allocscope run` without and with --profile, alternately, RUNS times (default 7);
printed is the CPU time (user + system) of each, and the median of the per-pair ratios.
The README's "Heap profiles" quotes it. Not a test: times are not judged.
"""
import os
import resource
import statistics
import subprocess
import sys
import tempfile

WORK = """
import json, sys
items, rounds = int(sys.argv[1]), int(sys.argv[2])
d = [{"id": i, "name": "item%d" % i, "tags": ["a", "b", str(i)], "v": i * 0.5}
     for i in range(items)]
for _ in range(rounds):
    d = json.loads(json.dumps(d))
"""
BYTEARRAYS = """
import random, sys
random.seed(1)
keep = [None] * 4096
for i in range(int(sys.argv[1])):
    keep[random.randrange(4096)] = bytearray(random.choice((600, 4000, 20000, 100000)))
"""


def cpu(cmd, cwd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    build = os.path.abspath(sys.argv[1])
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    allocscope = os.path.join(build, "scripts", "allocscope")
    work = {
        "pair_loop 20M malloc(32)/free": [os.path.join(build, "tests", "bench", "pair_loop"),
                                          "20000000"],
        "python3 json round trip": ["/usr/bin/python3", "-c", WORK, "20000", "20"],
        "python3 bytearrays 600 B-100 KB": ["/usr/bin/python3", "-c", BYTEARRAYS, "400000"],
    }
    with tempfile.TemporaryDirectory() as tmp:  # the profiles are written here
        for name, cmd in work.items():
            base, prof = [], []
            for _ in range(runs):
                base.append(cpu([allocscope, "run", "--", *cmd], tmp))
                prof.append(cpu([allocscope, "run", "--profile", "--", *cmd], tmp))
            ratios = [p / b for p, b in zip(prof, base)]
            print(f"{name}: median CPU {statistics.median(base):.3f} s without, "
                  f"{statistics.median(prof):.3f} s with --profile; median ratio "
                  f"{statistics.median(ratios):.3f} ({runs} runs each)", flush=True)


if __name__ == "__main__":
    main()
