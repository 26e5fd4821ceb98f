#!/usr/bin/env python3
"""record_stable_test.py LAUNCHER PROGRAM: call sites are the same in every run.

Runs PROGRAM twice under the preload with fault.record (ASLR moves every object between
the two runs) and requires the same set of call sites and of stack hashes (stack_id.h),
each line valid JSON, each call site with a
module path that exists and a hexadecimal offset."""
import json
import os
import subprocess
import sys
import tempfile


def record(launcher, program, directory, tag):
    path = os.path.join(directory, f"{tag}.%p.json")
    subprocess.run([launcher, "run", "--conf", f"fault.record:{path}", "--", program],
                   check=True, stdout=subprocess.DEVNULL, timeout=60)
    sites = set()
    for name in os.listdir(directory):
        if name.startswith(tag + "."):
            with open(os.path.join(directory, name)) as f:
                for line in f:
                    entry = json.loads(line)
                    if entry.get("kind") == "stack":  # stacks: their hashes, as names
                        assert len(entry["stack"]) == 16 and entry["frames"], entry
                        sites.add("stack " + entry["stack"])
                        continue
                    assert os.path.isabs(entry["module"]) and os.path.exists(entry["module"]), entry
                    int(entry["offset"], 16)
                    assert entry["callsite"].endswith("+" + entry["offset"]), entry
                    sites.add(entry["callsite"])
    return sites


def main():
    launcher, program = sys.argv[1:3]
    with tempfile.TemporaryDirectory() as directory:
        first = record(launcher, program, directory, "first")
        second = record(launcher, program, directory, "second")
    if not first or first != second:
        sys.exit(f"call sites differ between runs:\n{sorted(first ^ second)}")
    print(f"{len(first)} call sites, identical in both runs")


if __name__ == "__main__":
    main()
