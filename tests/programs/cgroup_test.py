#!/usr/bin/env python3
"""cgroup_test.py: limit:cgroup[-HEADROOM], the limit that follows the container.

  cgroup_test.py ALLOCSCOPE

1. A memory cgroup this test makes for itself (the v1 memory hierarchy, or cgroup2 with
   the memory controller), where the machine lets it (root, a writable hierarchy): a
   python3 in it under limit:cgroup gets MemoryError for 96 MB under a 100 MiB cgroup limit
   (allocscope's limit is 95 MiB: 5 % headroom) where the cgroup alone would OOM-kill,
   and limit:cgroup-40M gives a 60 MiB limit. Skipped (said so) where no such hierarchy can
   be made.
2. The test-only cgroup_dir key, on a directory of limit files the test writes: the limit
   is read (cgroup2's memory.max and memory.high, the lower wins), and a change of the
   file while the program runs is followed: an allocation that fit before is refused after
   the limit was lowered.
3. Bad input: limit:cgroup where no limit file exists is one line naming the problem and no
   limit; the command refuses limit:cgroupX (exit 2, the program never runs).
Exits 0 if all holds, 1 otherwise.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

PY = "/usr/bin/python3"
problems = []


def check(condition, message):
    if not condition:
        problems.append(message)
    return condition


def stats_limit(stderr):
    m = re.search(r'"budget":\{"limit":(\d+)', stderr)
    return int(m.group(1)) if m else None


ALLOC = r"""
import sys
try:
    b = bytearray(int(sys.argv[1]) << 20)
    print("got", flush=True)
except MemoryError:
    print("MemoryError", flush=True)
"""


def make_cgroup():
    """A memory cgroup of this test's own, with a 100 MiB limit: (directory, limit file) or
    None where the machine does not allow one."""
    name = f"allocscope-test-{os.getpid()}"
    candidates = [("/sys/fs/cgroup/memory", "memory.limit_in_bytes")]
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        try:
            if "memory" in open(os.path.join(root, "cgroup.controllers")).read().split():
                candidates.append((root, "memory.max"))
        except OSError:
            pass
    for root, limit_file in candidates:
        path = os.path.join(root, name)
        try:
            os.mkdir(path)
        except OSError:
            continue
        try:
            with open(os.path.join(path, limit_file), "w") as f:
                f.write(str(100 << 20))
            return path, limit_file
        except OSError:
            os.rmdir(path)
    return None


def in_cgroup(path, allocscope, conf, size_mib):
    """python3 under allocscope, moved into the cgroup before it starts."""
    script = f'echo $$ > {path}/cgroup.procs && exec "$@"'
    cmd = ["sh", "-c", script, "sh", allocscope, "run", "--conf", "stats_print:json," + conf, "--",
           PY, "-c", ALLOC, str(size_mib)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def real_cgroup(allocscope):
    made = make_cgroup()
    if made is None:
        print("cgroup_test: no memory cgroup can be made here: case 1 skipped")
        return
    path, limit_file = made
    try:
        r = in_cgroup(path, allocscope, "limit:cgroup", 96)
        check(r.returncode == 0 and r.stdout.strip() == "MemoryError",
              f"real cgroup: 96 MB under a 100 MiB cgroup: {r.returncode} {r.stdout!r} {r.stderr[-400:]}")
        check(stats_limit(r.stderr) == (100 << 20) - (100 << 20) // 20,
              f"real cgroup: limit {stats_limit(r.stderr)}, expected 95 MiB")
        r = in_cgroup(path, allocscope, "limit:cgroup-40M", 50)
        check(stats_limit(r.stderr) == 60 << 20 and r.stdout.strip() == "got",
              f"real cgroup: limit:cgroup-40M gave {stats_limit(r.stderr)} ({r.stdout!r})")
        print(f"cgroup_test: real cgroup {path} ({limit_file}): ok")
    finally:
        for _ in range(50):
            try:
                os.rmdir(path)
                break
            except OSError:
                time.sleep(0.1)


FOLLOW = r"""
import os, sys, time
a = bytearray(40 << 20)
open(sys.argv[1], "w").close()                       # ready: the test lowers the limit now
while not os.path.exists(sys.argv[2]): time.sleep(0.01)
time.sleep(0.15)                                     # past the 100 ms between readings
try:
    b = bytearray(30 << 20)
    print("second: got", flush=True)
except MemoryError:
    print("second: MemoryError", flush=True)
"""


def test_dir(allocscope, work):
    cg = os.path.join(work, "cg")
    os.mkdir(cg)
    with open(os.path.join(cg, "memory.max"), "w") as f:
        f.write(str(200 << 20) + "\n")
    with open(os.path.join(cg, "memory.high"), "w") as f:
        f.write(str(100 << 20) + "\n")
    conf = f"cgroup_dir:{cg},limit:cgroup-10M"
    r = subprocess.run([allocscope, "run", "--conf", "stats_print:json," + conf, "--", PY, "-c", ALLOC, "80"],
                       capture_output=True, text=True, timeout=60)
    check(stats_limit(r.stderr) == 90 << 20 and r.stdout.strip() == "got",
          f"cgroup_dir: memory.high (the lower) less 10M: {stats_limit(r.stderr)} {r.stdout!r}")
    # The limit is followed at run time: 40 + 30 MB fit under 90 MiB, not under 40 MiB.
    ready, changed = os.path.join(work, "ready"), os.path.join(work, "changed")
    proc = subprocess.Popen([allocscope, "run", "--conf", conf, "--", PY, "-c", FOLLOW, ready,
                             changed], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(500):
        if os.path.exists(ready):
            break
        time.sleep(0.02)
    with open(os.path.join(cg, "memory.high"), "w") as f:
        f.write(str(50 << 20) + "\n")
    open(changed, "w").close()
    out, err = proc.communicate(timeout=60)
    check(out.strip() == "second: MemoryError",
          f"cgroup_dir: the lowered limit was not followed: {out!r} {err[-400:]}")
    # A directory without limit files: one line, no limit, the program runs.
    empty = os.path.join(work, "empty")
    os.mkdir(empty)
    r = subprocess.run([PY, "-c", "print('ran')"], capture_output=True, text=True,
                       env=dict(os.environ, LD_PRELOAD=lib(allocscope),
                                ALLOCSCOPE_CONF=f"cgroup_dir:{empty},limit:cgroup"))
    bad = [l for l in r.stderr.splitlines() if l.startswith("allocscope:")]
    check(r.stdout.strip() == "ran" and len(bad) == 1 and "cgroup_dir names no directory" in bad[0],
          f"cgroup_dir without limit files: {r.stdout!r} {r.stderr!r}")
    # The command refuses a malformed value before running anything.
    marker = os.path.join(work, "ran")
    r = subprocess.run([allocscope, "run", "--limit", "cgroupX", "--", "touch", marker],
                       capture_output=True, text=True)
    check(r.returncode == 2 and not os.path.exists(marker) and "limit" in r.stderr,
          f"--limit cgroupX: {r.returncode} {r.stderr!r}")


def lib(allocscope):
    return subprocess.run([allocscope, "lib"], capture_output=True, text=True).stdout.strip()


def main():
    allocscope = sys.argv[1]
    work = tempfile.mkdtemp(prefix="allocscope-cgroup-test-")
    try:
        real_cgroup(allocscope)
        test_dir(allocscope, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for p in problems:
        print("cgroup_test: FAIL:", p)
    print("cgroup_test: ok" if not problems else f"cgroup_test: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
