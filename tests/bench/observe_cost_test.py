#!/usr/bin/env python3
"""observe_cost_test.py PAIR_LOOP PRELOAD: control:true, a timeline and the summary stats
cost a malloc/free pair nothing (issue 18): under callgrind, the instructions of every
function on the pair's path (pair_loop's loop, malloc, free, allocscope_malloc_checked,
jemalloc's je_malloc and je_free) are the same, to the instruction, with them and without.

Everything they do happens at jemalloc's activity callback (every 64 KiB a thread allocates
or frees) and at failures, never in the pair; what they cost at start-up (mapping the live
page, one mallctl per thread) and at exit is outside those functions. Exit 0 if equal, 1
with the differing functions, 77 without valgrind.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

PAIRS = 200000
PATH_FUNCTIONS = ("je_malloc", "je_free", "malloc", "free", "main", "allocscope_malloc_checked")


def self_costs(pair_loop, preload, conf, tmp):
    out = os.path.join(tmp, "callgrind.out")
    env = dict(os.environ, LD_PRELOAD=preload, ALLOCSCOPE_CONF=conf, XDG_RUNTIME_DIR=tmp)
    subprocess.run(["valgrind", "--quiet", "--tool=callgrind", f"--callgrind-out-file={out}",
                    pair_loop, str(PAIRS)], env=env, check=True, capture_output=True, timeout=600)
    text = subprocess.run(["callgrind_annotate", "--threshold=100", out], capture_output=True,
                          text=True, check=True).stdout
    costs = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(\S+):(\S+)", line)
        if m and m.group(3) in PATH_FUNCTIONS:
            key = f"{os.path.basename(m.group(2))}:{m.group(3)}"
            costs[key] = costs.get(key, 0) + int(m.group(1).replace(",", ""))
    return costs


def main():
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        print("observe_cost_test: no valgrind here")
        sys.exit(77)
    pair_loop, preload = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        without = self_costs(pair_loop, preload, "", tmp)
        observed = f"control:true,stats_print:summary,timeline_file:{tmp}/t.html"
        with_all = self_costs(pair_loop, preload, observed, tmp)
        runs = [("nothing", without, with_all)]
        for conf in ("limit:8G", "policy:nofail"):
            runs.append((conf, self_costs(pair_loop, preload, conf, tmp),
                         self_costs(pair_loop, preload, conf + "," + observed, tmp)))
    ok = True
    for name, a, b in runs:
        total_a, total_b = sum(a.values()), sum(b.values())
        print(f"{name}: pair path {total_a / PAIRS:.3f} instructions per pair without, "
              f"{total_b / PAIRS:.3f} with control, timeline and summary")
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                print(f"FAIL: {name}: {key}: {a.get(key)} without, {b.get(key)} with")
                ok = False
        if len(a) < 4:
            print(f"FAIL: {name}: the pair's functions were not found: {a}")
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
