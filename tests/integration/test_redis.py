#!/usr/bin/python3
"""Debian's redis-server under the preload: one heap for malloc and jemalloc's API.

Debian's redis-server links libjemalloc.so.2 and uses both malloc-family calls and
jemalloc's own API: mallctl() for INFO memory's allocator_* fields, malloc_stats_print()
for MEMORY MALLOC-STATS, arena purges for MEMORY PURGE, malloc_usable_size() for its
own used_memory counter. Under the preload all of them must reach allocscope's jemalloc.
If mallctl went to a second, idle jemalloc (libjemalloc.so.2's own) while malloc went to
ours, allocator_allocated would stay near zero and not follow the data stored, which is
what this test looks for.

For each side (preloaded through the launcher, then plain) the test starts redis-server
on 127.0.0.1 and a free port with no persistence, waits for PING, runs a bounded
redis-benchmark (set,get,lpush,lpop,incr; 20,000 requests each, 10 clients), checks
INFO commandstats and INFO memory, stores, reads back and deletes big values (up to
32 MiB) while following allocator_allocated, then stops the server with SIGTERM and
requires exit status 0. The preloaded server must leave a stats file with nmalloc > 0;
both sides must have served every request.
"""
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import integ_common as ic  # noqa: E402

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"
REDIS_BENCHMARK = "/usr/bin/redis-benchmark"
HOST = "127.0.0.1"
REQUESTS = 20000
BENCH_TESTS = ["SET", "GET", "LPUSH", "LPOP", "INCR"]
BIG_SIZES = [100_000, 1 << 20, (8 << 20) + 13, 32 << 20]
MiB = 1 << 20


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class RespError(Exception):
    pass


class Resp:
    """A minimal RESP2 client: big values do not fit in redis-cli's argv."""

    def __init__(self, port, timeout=60):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def close(self):
        self.f.close()
        self.sock.close()

    def __call__(self, *args):
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            parts += [b"$%d\r\n" % len(a), a, b"\r\n"]
        self.sock.sendall(b"".join(parts))
        return self.read()

    def read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError(f"connection closed (read {line!r})")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError("connection closed in a bulk reply")
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError(f"unexpected reply {line!r}")


def parse_info(text):
    info = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            k, v = line.split(":", 1)
            info[k] = v
    return info


class RedisServer:
    """One redis-server process, always killed by stop() or kill()."""

    def __init__(self, tc, pre, workdir):
        self.tc, self.pre, self.workdir = tc, pre, workdir
        self.proc = None
        self.port = None
        self.log_path = os.path.join(workdir, "redis.log")

    def start(self, attempts=3):
        for _ in range(attempts):
            self.port = free_port()
            argv = [REDIS_SERVER, "--bind", HOST, "--port", str(self.port), "--save", "",
                    "--appendonly", "no", "--daemonize", "no", "--dir", self.workdir,
                    "--protected-mode", "yes", "--logfile", ""]
            cmd = self.pre.cmd(argv) if self.pre else argv
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(cmd, env=ic.plain_env(), cwd=self.workdir,
                                             stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            if self.wait_ready(timeout=30):
                return
            if self.proc.poll() is not None and "Address already in use" in self.log():
                continue  # lost the race for the port: try another one
            break
        self.tc.fail(f"redis-server did not answer PING (exit status {self.proc.poll()}); "
                     f"log:\n{ic.tail(self.log())}")

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self.cli("PING", check=False, timeout=5) == "PONG":
                return True
            time.sleep(0.1)
        return False

    def cli(self, *args, check=True, timeout=60):
        try:
            r = subprocess.run([REDIS_CLI, "-h", HOST, "-p", str(self.port)] + list(args),
                               env=ic.plain_env(), stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            if check:
                raise
            return None
        if check:
            self.tc.assertEqual(r.returncode, 0, f"redis-cli {args}: {r.stderr!r}")
        return r.stdout.decode("utf-8", "replace").strip()

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, timeout=30):
        """SIGTERM by pid, bounded wait; returns the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.tc.fail(f"redis-server ignored SIGTERM for {timeout}s; log:\n{ic.tail(self.log())}")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            ic.kill_group(self.proc)


class RedisUnderPreload(unittest.TestCase):
    def memory(self, server):
        return parse_info(server.cli("INFO", "memory"))

    def settled_memory(self, server, predicate=None, timeout=10):
        """INFO memory once serverCron has refreshed it. Redis reads the allocator_*
        fields from mallctl in serverCron (every 100 ms at hz 10) and INFO shows that
        cached copy, which can still hold transient buffers (a 32 MiB GET reply) that
        used_memory, counted live, no longer has. So wait for two cron periods, then
        poll until predicate (if any) holds."""
        time.sleep(0.25)
        deadline = time.monotonic() + timeout
        while True:
            mem = self.memory(server)
            if predicate is None or predicate(mem) or time.monotonic() > deadline:
                return mem
            time.sleep(0.05)

    def run_side(self, pre):
        side = "preloaded" if pre else "plain"
        workdir = pre.dir if pre else self.plain_dir
        server = RedisServer(self, pre, workdir)
        result = {}
        try:
            server.start()

            # The benchmark, bounded: REQUESTS per test.
            bench = subprocess.run(
                [REDIS_BENCHMARK, "-h", HOST, "-p", str(server.port), "-n", str(REQUESTS),
                 "-c", "10", "-q", "-t", ",".join(t.lower() for t in BENCH_TESTS)],
                env=ic.plain_env(), stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
            out = bench.stdout.decode("utf-8", "replace")
            self.assertEqual(bench.returncode, 0, f"{side}: redis-benchmark failed:\n{out}\n"
                             f"{bench.stderr!r}\nserver log:\n{ic.tail(server.log())}")
            lines = re.split(r"[\r\n]+", out)
            for t in BENCH_TESTS:
                self.assertTrue(
                    any(re.match(rf"^\s*{t}: [\d.]+ requests per second", l) for l in lines),
                    f"{side}: no result line for {t} in:\n{out}")
            result["bench_tests"] = sorted(
                m.group(1) for l in lines
                if (m := re.match(r"^\s*([A-Z]+): [\d.]+ requests per second", l)))

            # Every request reached the server.
            stats = parse_info(server.cli("INFO", "commandstats"))
            calls = {}
            for t in BENCH_TESTS:
                entry = stats.get(f"cmdstat_{t.lower()}", "")
                m = re.search(r"\bcalls=(\d+)", entry)
                self.assertIsNotNone(m, f"{side}: no commandstats for {t}: {stats}")
                calls[t] = int(m.group(1))
                self.assertGreaterEqual(calls[t], REQUESTS, f"{side}: {t} calls {calls[t]}")
            result["calls"] = calls
            result["dbsize"] = server.cli("DBSIZE")
            self.assertEqual(server.cli("GET", "counter:__rand_int__"), str(REQUESTS))

            # allocator_allocated (from mallctl) against used_memory (redis's own count).
            mem = self.settled_memory(server)
            self.assertTrue(mem.get("mem_allocator", "").startswith("jemalloc"), f"{side}: {mem}")
            used, alloc = int(mem["used_memory"]), int(mem["allocator_allocated"])
            self.assertGreater(alloc, 0, f"{side}: {mem}")
            self.assertGreater(alloc, used // 2,
                               f"{side}: allocator_allocated far below used_memory: {mem}")
            for key in ("allocator_active", "allocator_resident"):
                self.assertGreaterEqual(int(mem[key]), alloc, f"{side}: {key}: {mem}")

            # Big values: round trips, and allocator_allocated following the data.
            conn = Resp(server.port)
            try:
                self.big_values(side, server, conn)
                malloc_stats = conn("MEMORY", "MALLOC-STATS").decode("utf-8", "replace")
                self.assertIn("Begin jemalloc statistics", malloc_stats, f"{side}")
                m = re.search(r"^Allocated: (\d+)", malloc_stats, re.M)
                self.assertIsNotNone(m, f"{side}: MEMORY MALLOC-STATS:\n{malloc_stats[:3000]}")
                self.assertGreater(int(m.group(1)), used // 2,
                                   f"{side}: malloc_stats_print sees an idle heap: {m.group(0)}")
                self.assertEqual(conn("MEMORY", "PURGE"), "OK")
                self.assertEqual(conn("PING"), "PONG")
            finally:
                conn.close()

            status = server.stop()
            log = server.log()
            self.assertEqual(status, 0, f"{side}: redis-server exited {status}:\n{ic.tail(log)}")
            self.assertIn("ready to exit", log, f"{side}: no clean shutdown:\n{ic.tail(log)}")
            if pre:
                st = pre.check_active(server.proc.pid)
                pre.check_reports(log)
                print(f"preloaded redis-server heap: {st['heap']}", file=sys.stderr)
                self.assertGreater(st["heap"]["nmalloc"], 10000)
            return result
        finally:
            server.kill()

    def big_values(self, side, server, conn):
        rng = random.Random(20240601)
        values = {f"big:{n}": rng.randbytes(n) for n in BIG_SIZES}
        total = sum(BIG_SIZES)
        before = int(self.settled_memory(server)["allocator_allocated"])

        for k, v in values.items():
            self.assertEqual(conn("SET", k, v), "OK")
        for k, v in values.items():
            self.assertEqual(conn("STRLEN", k), len(v))
            got = conn("GET", k)
            self.assertTrue(got == v, f"{side}: {k} did not round-trip "
                            f"({len(got) if got is not None else None} bytes back)")
            mid = len(v) // 2
            self.assertEqual(conn("GETRANGE", k, mid, mid + 999), v[mid:mid + 1000])
        tail = b"tail" * 1000
        k = f"big:{BIG_SIZES[1]}"
        self.assertEqual(conn("APPEND", k, tail), BIG_SIZES[1] + len(tail))
        self.assertEqual(conn("SETRANGE", k, 5, b"patched"), BIG_SIZES[1] + len(tail))
        expect = bytearray(values[k] + tail)
        expect[5:12] = b"patched"
        self.assertTrue(conn("GET", k) == bytes(expect), f"{side}: APPEND/SETRANGE result differs")

        mem = self.settled_memory(
            server, lambda m: int(m["allocator_allocated"]) - before > total * 9 // 10)
        stored = int(mem["allocator_allocated"])
        used = int(mem["used_memory"])
        self.assertGreater(stored - before, total * 9 // 10,
                           f"{side}: allocator_allocated grew by {stored - before} bytes while "
                           f"{total} bytes were stored: mallctl does not see the heap malloc "
                           f"uses (before {before}, after {mem})")
        self.assertGreater(used, total, f"{side}: {mem}")
        self.assertGreater(stored, used * 9 // 10, f"{side}: {mem}")
        self.assertLess(stored, used * 5 // 4 + 8 * MiB, f"{side}: {mem}")

        self.assertEqual(conn("DEL", *values), len(values))
        freed = int(self.settled_memory(
            server, lambda m: stored - int(m["allocator_allocated"]) > total * 9 // 10)
            ["allocator_allocated"])
        self.assertGreater(stored - freed, total * 9 // 10,
                           f"{side}: allocator_allocated fell by only {stored - freed} bytes "
                           f"after deleting {total} bytes")

    def test_benchmark_and_consistent_heap(self):
        pre = ic.Preloaded(self, "redis")
        self.plain_dir = tempfile.mkdtemp(prefix="allocscope-integ-redis-plain-")
        self.addCleanup(shutil.rmtree, self.plain_dir, True)
        with_preload = self.run_side(pre)
        without = self.run_side(None)
        self.assertEqual(with_preload["bench_tests"], sorted(BENCH_TESTS))
        self.assertEqual(with_preload, without)


if __name__ == "__main__":
    ic.require_programs(REDIS_SERVER, REDIS_CLI, REDIS_BENCHMARK)
    ic.main()
