#!/usr/bin/env python3
"""tree_test.py: one limit for a process tree (limit_scope:tree, `allocscope run --tree`).

  tree_test.py ALLOCSCOPE

Real processes under the real command, each case asserted on what the programs printed:
1. --tree --limit 96M: a python3 child holds 64 MB; a second asking for 64 MB gets
   MemoryError, and the first is unaffected. The same without --tree succeeds (each process
   has its own limit then).
2. A child holding 64 MB is SIGKILLed: its grant comes back, the next 64 MB succeed.
3. A NOFAIL allocation in one process waits, and a free in another wakes it: the waiter
   gets its memory after the holder freed, before the holder exits.
4. `sh -c` pipelines and `make -j2` on a generated Makefile give byte-identical output
   under a tree budget and without the preload.
5. No shared budget object is left in /dev/shm afterwards.
6. A child that clears ALLOCSCOPE_TREE leaves the tree: its 64 MB are not refused.
7. The stats show the tree's figures (limit, charged, members, this process's grant).
8. A refused ALLOCSCOPE_TREE (not a tree's name, gone, an unknown layout, another user's
   when run as root) is one line and the process runs under its own budget; strict:true
   makes it fatal.
Exits 0 if all holds, 1 otherwise (77 when make is missing, for that case only: skipped).
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

PY = "/usr/bin/python3"
problems = []

HOLDER = r"""
import os, sys, time
b = bytearray(64 << 20)
for i in range(0, len(b), 4096): b[i] = 1
print("holder: got", flush=True)
open(sys.argv[1], "w").close()
while not os.path.exists(sys.argv[2]): time.sleep(0.01)
del b
print("holder: freed", flush=True)
time.sleep(float(sys.argv[3]))
print("holder: exits", flush=True)
"""

SECOND = r"""
try:
    b = bytearray(64 << 20)
    print("second: got", flush=True)
except MemoryError:
    print("second: MemoryError", flush=True)
"""


def check(condition, message):
    if not condition:
        problems.append(message)
    return condition


def run(allocscope, flags, script, timeout=60):
    cmd = [allocscope, "run", *flags, "--", "sh", "-c", script]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def lines(text):
    return [l for l in text.splitlines() if l]


def holder_then_second(allocscope, flags, work, hold_seconds="0", kill_holder=False,
                       second_prefix=""):
    """The holder takes 64 MB and waits for a 'go' file; the second process asks for 64 MB;
    then 'go' (or SIGKILL for the holder)."""
    ready, go = os.path.join(work, "ready"), os.path.join(work, "go")
    for f in (ready, go):
        if os.path.exists(f):
            os.unlink(f)
    if kill_holder:
        script = (f"{PY} -c '{HOLDER}' {ready} {go} 0 & pid=$!; "
                  f"while [ ! -e {ready} ]; do sleep 0.02; done; kill -9 $pid; wait $pid; "
                  f"echo 'driver: killed'; {PY} -c '{SECOND}'")
    else:
        script = (f"{PY} -c '{HOLDER}' {ready} {go} {hold_seconds} & "
                  f"while [ ! -e {ready} ]; do sleep 0.02; done; "
                  f"(sleep 0.5; echo 'driver: go'; touch {go}) & "
                  f"{second_prefix}{PY} -c '{SECOND}'; wait")
    return run(allocscope, flags, script)


def main():
    allocscope = sys.argv[1]
    work = tempfile.mkdtemp(prefix="allocscope-tree-test-")
    before = set(glob.glob("/dev/shm/allocscope-tree-*"))
    try:
        # 1. One limit for the tree: the second process is refused.
        status, out, err = holder_then_second(allocscope, ["--tree", "--limit", "96M"], work)
        check(status == 0, f"tree: exit status {status}: {err}")
        got = lines(out)
        check("second: MemoryError" in got, f"tree: the second 64 MB were not refused: {got}")
        check("holder: exits" in got, f"tree: the holder was disturbed: {got}")
        # ... and each process its own limit without --tree.
        status, out, err = holder_then_second(allocscope, ["--limit", "96M"], work)
        got = lines(out)
        check("second: got" in got, f"no tree: the second 64 MB were refused: {got} {err}")

        # 2. A member killed while holding memory gives it back.
        status, out, err = holder_then_second(allocscope, ["--tree", "--limit", "96M"], work,
                                              kill_holder=True)
        got = lines(out)
        check("driver: killed" in got and "second: got" in got,
              f"SIGKILL: the killed holder's 64 MB did not come back: {got} {err}")

        # 3. NOFAIL waits in one process until another frees.
        status, out, err = holder_then_second(
            allocscope, ["--tree", "--limit", "96M", "--policy", "nofail"], work,
            hold_seconds="1.5")
        got = lines(out)
        check(status == 0, f"nofail: exit status {status}: {err}")
        if check(all(x in got for x in ("driver: go", "holder: freed", "second: got",
                                        "holder: exits")), f"nofail: {got}"):
            check(got.index("holder: freed") < got.index("second: got") < got.index("holder: exits"),
                  f"nofail: the waiter was not woken by the other process's free: {got}")

        # 4. Pipelines and make, byte for byte.
        pipeline = ("seq 1 20000 | sort -r | awk '{s += $1} END {print s}'; "
                    f"{PY} -c 'print(sum(range(10**6)))' | tr 0-9 a-j | wc -c")
        plain = subprocess.run(["sh", "-c", pipeline], capture_output=True, text=True)
        status, out, err = run(allocscope, ["--tree", "--limit", "512M"], pipeline)
        check(status == 0 and out == plain.stdout,
              f"pipeline: {status} {out!r} against {plain.stdout!r}: {err}")
        if shutil.which("make") and shutil.which("cc"):
            mk = os.path.join(work, "make")
            os.mkdir(mk)
            with open(os.path.join(mk, "Makefile"), "w") as f:
                objs = " ".join(f"f{i}.o" for i in range(8))
                f.write(f"all: prog\n\tsha256sum prog > sum.txt\n\tcat sum.txt\n"
                        f"prog: {objs}\n\tcc -o prog {objs}\n"
                        "%.o: %.c\n\tcc -O1 -c $< -o $@\n")
            for i in range(8):
                with open(os.path.join(mk, f"f{i}.c"), "w") as f:
                    body = f"int f{i}(int x) {{ return x * {i + 3} + {i}; }}\n"
                    if i == 0:
                        body += "int main(void) { return f0(1) == 4 ? 0 : 1; }\n"
                    f.write(body)
            plain = subprocess.run(["make", "-s", "-j2", "-C", mk], capture_output=True, text=True)
            subprocess.run(["make", "-s", "-C", mk, "-f", "/dev/null"], capture_output=True)
            for name in os.listdir(mk):
                if name.endswith(".o") or name in ("prog", "sum.txt"):
                    os.unlink(os.path.join(mk, name))
            status, out, err = run(allocscope, ["--tree", "--limit", "1G"],
                                   f"make -s -j2 -C {mk}", timeout=300)
            check(status == 0 and out == plain.stdout and out.strip() != "",
                  f"make -j2: {status} {out!r} against {plain.stdout!r}: {err}")
        else:
            print("tree_test: make or cc missing: the make case is skipped")

        # 6. A child that clears the variable leaves the tree.
        status, out, err = holder_then_second(allocscope, ["--tree", "--limit", "96M"], work,
                                              second_prefix="env -u ALLOCSCOPE_TREE ")
        got = lines(out)
        check(status == 0 and "second: got" in got and "holder: exits" in got,
              f"cleared ALLOCSCOPE_TREE: the child was still refused: {got} {err}")

        # 7. The tree's figures in the stats.
        r = subprocess.run([allocscope, "run", "--tree", "--limit", "96M", "--conf",
                            "stats_print:true", "--", PY, "-c",
                            "b = bytearray(8 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
                            "print('ok')"], capture_output=True, text=True, timeout=60)
        stats = [json.loads(l[l.index("{"):]) for l in r.stderr.splitlines() if '"tree"' in l]
        if check(r.returncode == 0 and stats, f"stats: no tree figures: {r.returncode} {r.stderr}"):
            tree = stats[-1]["allocscope"]["budget"]["tree"]
            # At exit: python3 has freed its objects; the interpreter's own heap is left.
            check(tree["limit"] == 96 << 20 and tree["members"] >= 1 and
                  0 < tree["charged"] <= tree["grant"] <= tree["limit"],
                  f"stats: tree figures {tree}")

        # 8. Refused objects: one line, the process runs under its own budget.
        probe = subprocess.run([allocscope, "run", "--tree", "--limit", "96M", "--", "sh", "-c",
                                'stat -c %s "/dev/shm${ALLOCSCOPE_TREE}"'],
                               capture_output=True, text=True, timeout=60)
        size = int(probe.stdout.strip())
        unknown = f"/allocscope-tree-test{os.getpid()}"
        with open("/dev/shm" + unknown, "wb") as f:
            f.write(b"\xff" * size)  # no magic this version knows
        os.chmod("/dev/shm" + unknown, 0o600)
        refusals = [("/etc/passwd", "not the name of an allocscope tree budget"),
                    ("/allocscope-tree-gone", "the shared budget is gone"),
                    (unknown, "a layout this version does not know")]
        if os.geteuid() == 0:
            other = f"/allocscope-tree-other{os.getpid()}"
            shutil.copy("/dev/shm" + unknown, "/dev/shm" + other)
            os.chmod("/dev/shm" + other, 0o600)
            os.chown("/dev/shm" + other, 65534, 65534)
            refusals.append((other, "belongs to another user"))
        try:
            for name, why in refusals:
                for strict in (False, True):
                    conf = "limit:64M" + (",strict:true" if strict else "")
                    r = subprocess.run([allocscope, "run", "--conf", conf, "--", "env",
                                        f"ALLOCSCOPE_TREE={name}", PY, "-c", "print('ran')"],
                                       capture_output=True, text=True, timeout=60)
                    said = [l for l in r.stderr.splitlines() if why in l]
                    if strict:
                        check(r.returncode != 0 and "ran" not in r.stdout and len(said) == 1,
                              f"{name} with strict:true: not fatal: {r.returncode} {r.stderr}")
                    else:
                        check(r.returncode == 0 and r.stdout == "ran\n" and len(said) == 1,
                              f"{name}: {r.returncode} {r.stdout!r}, expected one line "
                              f"'{why}': {r.stderr}")
        finally:
            for name in (unknown, f"/allocscope-tree-other{os.getpid()}"):
                if os.path.exists("/dev/shm" + name):
                    os.unlink("/dev/shm" + name)

        # 5. Nothing left behind.
        time.sleep(0.2)
        left = set(glob.glob("/dev/shm/allocscope-tree-*")) - before
        check(not left, f"shared budget objects left: {sorted(left)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for p in problems:
        print("tree_test: FAIL:", p)
    print("tree_test: ok" if not problems else f"tree_test: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
