// stress.cc: many threads hammering the preload with everything at once, under a tight
// budget, and bookkeeping checks at quiescent points.
//
//   stress THREADS OPS [SEED] [--forks N] [--stall-seconds S] [--budget-mib M]
//
// THREADS (2..64) workers each run OPS operations drawn from a fixed seed: allocations of
// every kind (malloc, calloc, the allocscope_* call-site API, kvmalloc, aligned forms,
// operator new in its throwing, nothrow, array and aligned forms), sizes from 1 byte to
// 4 MiB, realloc chains that grow and shrink across kv_threshold and kv_direct (so blocks
// move between the arena and mmap regions), frees of blocks that other threads allocated
// (a shared exchange array of atomics), reserves whose allocations must not fail, nested
// scopes of every flag (allocscope::Scope
// and ClearScope in random nesting, LIFO by construction), a reclaimer per thread that
// frees that thread's cache of blocks (classes 0-15, so NORECLAIM_CLASS scopes exclude
// some), NOFAIL allocations that must succeed, and a fork from a few threads in the
// middle of the run. Every block carries a pattern derived from its seed and offset; it
// is checked before every free and after every realloc, and calloc/ZERO memory is checked
// to be zero.
//
// The budget: allocscope_limit_set(charged + BUDGET), BUDGET = THREADS x 1.5 MiB + 8 MiB
// by default, so allocations fail often. NOWAIT/NORETRY/normal/RETRY_MAYFAIL failures are
// expected and counted per contract; a NOFAIL failure is fatal. For NOFAIL to be able to
// succeed something must free: before a NOFAIL allocation a thread frees its own blocks
// down to kNofailHold and empties its reclaimable cache, so even with every thread waiting
// in NOFAIL at once the total charge is at most
//   THREADS x (kNofailHold + kNofailMax + 192 KiB of allowance and size-class rounding)
//   + the exchange (2 x THREADS x 32 KiB) + the emergency allowance,
// which is below BUDGET (checked at start-up). A watchdog aborts the run if a thread makes
// no progress for --stall-seconds (default 60): a deadlock, or NOFAIL never satisfied.
//
// Checks at three barriers where every worker is parked with its thread cache flushed
// (thread.tcache.flush) and nothing allocates:
//   - start: baselines (charged, stats.allocated, heap nmalloc - ndalloc);
//   - middle, with the blocks still live:
//       heap (nmalloc - ndalloc) - at_start   == number of live jemalloc (non-region) blocks
//       kv.regions, kv.region_bytes           == live region blocks, their usable sizes
//     (jemalloc counts a small region as "malloc'ed" when it leaves its bin, including into
//     a thread cache, and "dalloc'ed" when it returns, so the difference is live blocks
//     plus blocks in thread caches; with every cache flushed it is live blocks exactly),
//       charged - charged_at_start            == sum of malloc_usable_size of live blocks,
//     exactly, unless a refill about to fail resynchronised the budget with jemalloc's
//     total (policy/budget.h), which may only lower it; so what is asserted is
//       really live <= charged <= charged_at_start + live blocks' usable sizes,
//     "really live" being jemalloc's stats.allocated minus its internal allocations plus
//     the regions' bytes (the figures are printed; "+0" means exact). And the limit held:
//       really live <= limit + emergency + threads x 128 KiB (allowance rounding),
//     unless the limit had to be raised for a NOFAIL waiter to reach the barrier;
//   - end: everything freed: the same bounds with no live block, nmalloc - ndalloc back to
//     its start, kv.regions == 0; then the limit is removed and charged() (now
//     jemalloc's stats.allocated, thread caches included) == its value at the start
//     barrier, exactly.
// Counters, compared with the stats JSON deltas:
//   - failures per contract: JSON >= ours, and JSON <= ours + the operator-new failures
//     of that contract. Not exact: a failing operator new throws std::bad_alloc, and the
//     exception object is itself malloc'ed (__cxa_allocate_exception) in the same scope;
//     when the budget is full that allocation fails too (libstdc++ then uses its
//     emergency pool), which the engine counts and we cannot see;
//   - reports + reports_suppressed = failures without NOWARN + stalls + NOFAIL demotions
//     (same slack). Demotions: a NOFAIL request above nofail_max (INT_MAX) is demoted to
//     RETRY_MAYFAIL and reported whatever NOWARN says; the size-cap requests (above
//     PTRDIFF_MAX, which fail even NOFAIL) are such, so they count as retry_mayfail;
//   - conflicts (call-site NOFAIL in a NOWAIT scope, and allocscope_save(NOFAIL) inside
//     NOWAIT), nofail_demotions, kv.direct and reclaimer_calls: exact; misuse: 0.
// Every worker, and main, allocates once right after the limit is set: a thread is part
// of the budget's sum from its first allocation under the limit (policy/budget.h), and
// the checks need every thread that frees to be in it.
// After the workers exit (pthread_join) charged() is compared with its value before they
// were created, with a tolerance of 64 KiB + 4 KiB per thread: the per-thread allowances
// are not part of charged() at all (charged() sums live bytes, not allowances, and a
// thread gives its allowance back at exit), and jemalloc's thread caches were flushed at
// exit, so what is left is glibc's per-thread bookkeeping (the DTV of each thread, freed
// only when glibc drops the thread's stack from its stack cache), which this program
// cannot control. The figure is printed.
// Then a churn phase, with the workers gone, under a fresh limit: rounds of short-lived
// threads that allocate and free in pthread key destructors (which run after the preload's
// own thread-exit handler), and of threads cancelled while they wait inside a NOFAIL
// malloc at the limit. After a warm-up round (glibc caches thread stacks, and the first
// round's DTVs stay live with them), the charge must come back to its baseline exactly, to
// the byte, once the exiting threads are gone.
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <initializer_list>
#include <new>

#include "allocscope.h"
#include "allocscope.hpp"
#include "stress_support.h"

namespace {

using stress::die;
using stress::now_ns;
using stress::Rng;
using stress::all_zero;
using stress::check;
using stress::check_range;
using stress::fill;
using stress::check_tag;
using stress::tag;
using stress::Header;

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * 1024;

constexpr int kSlots = 32;             // live blocks per thread
constexpr int kCache = 16;             // reclaimable blocks per thread
constexpr size_t kCacheMax = 64 * kKiB;
constexpr size_t kExchangeMax = 32 * kKiB;
constexpr size_t kNofailMax = 64 * kKiB;
constexpr size_t kNofailHold = 512 * kKiB;
constexpr size_t kMaxBlock = 4 * kMiB;
constexpr size_t kKvThreshold = 64 * kKiB;
constexpr size_t kKvDirect = 1 * kMiB;
constexpr size_t kEmergency = 1 * kMiB;
constexpr int kMaxDepth = 8;

void sleep_ms(int ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, nullptr);
}

// ---- Randomness (xorshift*, one generator per thread from the run's seed). ----


// ---- Patterns: byte i of a block with seed s is byte (i % 8) of word(s, i / 8). ----


// ---- The resolution table of allocscope.h, to know which contract a call follows. ----

enum Contract { kNormal, kNoretry, kRetryMayfail, kNofail, kNowait, kContracts };
const char *const kContractNames[kContracts] = {"normal", "noretry", "retry_mayfail", "nofail",
                                                "nowait"};

Contract resolve(allocscope_flags_t scope, allocscope_flags_t call) {
  if (call & ALLOCSCOPE_NOFAIL) return kNofail;  // nofail_in_nowait:wait
  if (call & ALLOCSCOPE_NOWAIT) return kNowait;
  if (call & ALLOCSCOPE_NORETRY) return kNoretry;
  if (call & ALLOCSCOPE_RETRY_MAYFAIL) return kRetryMayfail;
  if (scope & ALLOCSCOPE_NOWAIT) return kNowait;
  if (scope & ALLOCSCOPE_NOFAIL) return kNofail;
  if (scope & ALLOCSCOPE_NORETRY) return kNoretry;
  if (scope & ALLOCSCOPE_RETRY_MAYFAIL) return kRetryMayfail;
  return kNormal;
}

// ---- The stats JSON: one number found by a path of keys, in order. ----

char g_json[32768];

long long json_number(const char *json, const char *const *path, int depth) {
  const char *at = json;
  char key[64];
  for (int i = 0; i < depth; ++i) {
    snprintf(key, sizeof(key), "\"%s\":", path[i]);
    at = strstr(at, key);
    CHECK(at != nullptr, "stats JSON has no key %s", key);
    at += strlen(key);
  }
  return atoll(at);
}

struct Snapshot {
  long long failures[kContracts], waits[kContracts], stalls[kContracts];
  long long conflicts, demotions, misuse, reports, suppressed, reclaimer_calls;
  long long regions, region_bytes, kv_direct, kv_fallbacks, remap_moves, grown_in_place;
  long long nmalloc, ndalloc, overdraws;
};

Snapshot snapshot() {
  const int n = allocscope_stats_json(g_json, sizeof(g_json));
  CHECK(n > 0 && n < static_cast<int>(sizeof(g_json)), "allocscope_stats_json returned %d", n);
  Snapshot s{};
  auto get = [](std::initializer_list<const char *> keys) {
    return json_number(g_json, keys.begin(), static_cast<int>(keys.size()));
  };
  s.overdraws = 0;
  for (int c = 0; c < kContracts; ++c) {
    s.failures[c] = get({"policies", kContractNames[c], "failures"});
    s.waits[c] = get({"policies", kContractNames[c], "waits"});
    s.stalls[c] = get({"policies", kContractNames[c], "stalls"});
    s.overdraws += get({"policies", kContractNames[c], "overdraws"});
  }
  s.conflicts = get({"conflicts"});
  s.demotions = get({"nofail_demotions"});
  s.misuse = get({"misuse"});
  s.reports = get({"reports"});
  s.suppressed = get({"reports_suppressed"});
  s.reclaimer_calls = get({"reclaimer_calls"});
  s.regions = get({"kv", "regions"});
  s.region_bytes = get({"kv", "region_bytes"});
  s.kv_fallbacks = get({"kv", "fallbacks"});
  s.kv_direct = get({"kv", "direct"});
  s.remap_moves = get({"kv", "remap_moves"});
  s.grown_in_place = get({"kv", "grown_in_place"});
  s.nmalloc = get({"heap", "nmalloc"});
  s.ndalloc = get({"heap", "ndalloc"});
  return s;
}

// jemalloc's mallctl, exported by the preload: flushing a thread's cache makes the heap's
// counters exact (see the top of the file).
using mallctl_fn = int (*)(const char *, void *, size_t *, void *, size_t);
mallctl_fn g_mallctl;

// What is really live in jemalloc's blocks, with every thread cache flushed: its
// stats.allocated (blocks out of its bins, thread caches included) minus its internal
// allocations (stats.arenas.<all>.internal), which no thread's counters include.
size_t heap_live_bytes() {
  uint64_t epoch = 1;
  size_t len = sizeof(epoch);
  size_t allocated = 0, internal = 0;
  CHECK(g_mallctl("epoch", &epoch, &len, &epoch, len) == 0, "mallctl(epoch)");
  len = sizeof(allocated);
  CHECK(g_mallctl("stats.allocated", &allocated, &len, nullptr, 0) == 0, "mallctl(stats.allocated)");
  len = sizeof(internal);
  CHECK(g_mallctl("stats.arenas.4096.internal", &internal, &len, nullptr, 0) == 0,
        "mallctl(stats.arenas.4096.internal)");
  return allocated - internal;
}

void flush_thread_cache() {
  CHECK(g_mallctl("thread.tcache.flush", nullptr, nullptr, nullptr, 0) == 0,
        "mallctl(thread.tcache.flush) failed");
}

// ---- Blocks. ----

enum Kind : uint8_t { kFree, kMalloc, kNew, kNewArray, kNewAligned };

struct Slot {
  void *p;
  size_t size;     // requested
  size_t usable;   // malloc_usable_size at allocation
  uint64_t seed;
  size_t align;    // kNewAligned
  Kind kind;
  bool region;
};

// ---- Options and shared state. ----

struct Options {
  int threads = 8;
  long ops = 10000;
  uint64_t seed = 1;
  int forks = 4;
  int stall_seconds = 60;
  size_t budget = 0;
};
Options g_opt;

std::atomic<void *> *g_exchange;  // 2 x threads slots
int g_exchange_slots;

struct Worker;
Worker *g_workers;

// Barriers: each worker flushes its thread cache, counts itself in, and waits for main to
// release the barrier (touching its progress stamp so the watchdog sees it waiting).
std::atomic<int> g_arrived{0};
std::atomic<int> g_released{0};
std::atomic<bool> g_done{false};

struct Counts {
  long long failures[kContracts];
  long long warned_failures;  // failures that should produce a report
  long long new_failures[kContracts];
  long long conflicts;
  long long kv_direct;
  long long nofail_ok;
  long long regions_made;
  long long zero_checks;
  long long realloc_steps;
  long long exchanged;
  long long sizecap;
  long long demotions;
  long long forks;
  long long scopes;
  long long reserves;
};

struct Worker {
  int index = 0;
  Rng rng{1};
  long ops_done = 0;
  long ops_target = 0;
  Slot slots[kSlots] = {};
  size_t held = 0;  // sum of usable sizes in slots
  std::atomic<void *> cache[kCache] = {};
  int reclaimer_id = 0;
  unsigned reclaim_class = 0;
  int nofail_scope_conflicts_left = 2;
  Counts n = {};
  std::atomic<uint64_t> progress_ns{0};
  std::atomic<long> progress_ops{0};
  std::atomic<int> where{0};  // 0 running, 1 at a barrier, 2 forked child wait, 3 done
  std::atomic<uint64_t> nofail_since{0};  // in a NOFAIL operation since (0: not)
  std::atomic<long long> reclaim_calls{0};
  std::atomic<long long> reclaimed{0};
  pthread_t thread{};

  void touch() {
    progress_ns.store(now_ns(), std::memory_order_relaxed);
    progress_ops.store(ops_done, std::memory_order_relaxed);
  }
  void run();
  void segment(int depth, long stop_at);
  void op();

  // Operations.
  void slot_toggle();
  void alloc_into(int i, size_t size);
  void free_slot(int i);
  void realloc_chain();
  void exchange_op();
  void cache_refill();
  void nofail_op();
  void reserve_op();
  void sizecap_op();
  void sizecap_failed(Contract c, allocscope_flags_t call);
  void kv_op();
  void calloc_op();
  void new_op();
  void aligned_op();
  void fork_child_check(allocscope_flags_t scope_at_fork);

  void failed(Contract c, allocscope_flags_t call, bool operator_new = false);
  size_t random_size();
  allocscope_flags_t random_call_flags();
  allocscope_flags_t random_scope_flags();
  void before_nofail();
  void prepare(Contract c, size_t *size) {
    if (c == kNofail) {
      if (*size > kNofailMax) *size = kNofailMax;
      before_nofail();
    }
  }
  void store(int i, void *p, size_t size, uint64_t seed, Kind kind, size_t align = 0);
  void check_region(const Slot &s, bool kv_ctx, bool fresh, const char *what);
  void free_all();
  void barrier();
};

size_t reclaim_cache(void *arg, size_t wanted) {
  Worker *w = static_cast<Worker *>(arg);
  w->reclaim_calls.fetch_add(1, std::memory_order_relaxed);
  size_t freed = 0;
  for (auto &c : w->cache) {
    if (freed >= wanted) break;
    void *p = c.exchange(nullptr);
    if (p == nullptr) continue;
    check_tag(p, kCacheMax, "cache");
    freed += malloc_usable_size(p);
    free(p);
  }
  w->reclaimed.fetch_add(static_cast<long long>(freed), std::memory_order_relaxed);
  return freed;
}

void Worker::failed(Contract c, allocscope_flags_t call, bool operator_new) {
  CHECK(c != kNofail, "thread %d: a NOFAIL allocation failed (scope %#x, call %#x)", index,
        allocscope_current(), call);
  ++n.failures[c];
  if (operator_new) ++n.new_failures[c];
  if (!((allocscope_current() | call) & ALLOCSCOPE_NOWARN)) ++n.warned_failures;
}

size_t Worker::random_size() {
  const uint64_t r = rng.below(100);
  if (r < 60) return rng.between(1, 256);
  if (r < 85) return rng.between(257, 16 * kKiB);
  if (r < 95) return rng.between(16 * kKiB, 256 * kKiB);
  return rng.between(256 * kKiB, kMaxBlock);
}

allocscope_flags_t Worker::random_call_flags() {
  static const allocscope_flags_t kChoices[] = {
      ALLOCSCOPE_NOWAIT, ALLOCSCOPE_NORETRY, ALLOCSCOPE_RETRY_MAYFAIL, ALLOCSCOPE_NOWARN,
      ALLOCSCOPE_KV,     ALLOCSCOPE_NORECLAIM, ALLOCSCOPE_MEMALLOC,   ALLOCSCOPE_NOMEMALLOC,
      ALLOCSCOPE_RESERVE, ALLOCSCOPE_NOFAULT};
  allocscope_flags_t f = 0;
  for (allocscope_flags_t c : kChoices)
    if (rng.percent(12)) f |= c;
  if (rng.percent(10)) f |= ALLOCSCOPE_NORECLAIM_CLASS(rng.below(16));
  return f;
}

allocscope_flags_t Worker::random_scope_flags() {
  static const allocscope_flags_t kChoices[] = {
      ALLOCSCOPE_NOFAIL,  ALLOCSCOPE_NOWAIT,    ALLOCSCOPE_NORETRY,  ALLOCSCOPE_RETRY_MAYFAIL,
      ALLOCSCOPE_NOWARN,  ALLOCSCOPE_KV,        ALLOCSCOPE_NORECLAIM, ALLOCSCOPE_MEMALLOC,
      ALLOCSCOPE_NOMEMALLOC, ALLOCSCOPE_RESERVE, ALLOCSCOPE_NOFAULT, ALLOCSCOPE_ZERO};
  allocscope_flags_t f = 0;
  for (allocscope_flags_t c : kChoices)
    if (rng.percent(c == ALLOCSCOPE_NOFAIL ? 6 : 14)) f |= c;
  if (rng.percent(20)) f |= ALLOCSCOPE_NORECLAIM_CLASS(rng.below(16));
  return f;
}

void Worker::store(int i, void *p, size_t size, uint64_t seed, Kind kind, size_t align) {
  Slot &s = slots[i];
  s.p = p;
  s.size = size;
  s.usable = malloc_usable_size(p);
  CHECK(s.usable >= size, "malloc_usable_size(%p) = %zu < %zu", p, s.usable, size);
  s.seed = seed;
  s.kind = kind;
  s.align = align;
  s.region = allocscope_is_region(p) != 0;
  held += s.usable;
}

// What allocscope.h promises about where a block lives. fresh: a new allocation (not a
// realloc, which keeps a region a region while it stays at or above kv_threshold).
void Worker::check_region(const Slot &s, bool kv_ctx, bool fresh, const char *what) {
  if (s.size < kKvThreshold)
    CHECK(!s.region, "thread %d: %s of %zu bytes (< kv_threshold) is a region", index, what, s.size);
  if (!kv_ctx && fresh)
    CHECK(!s.region, "thread %d: %s of %zu bytes outside KV is a region", index, what, s.size);
  if (kv_ctx && s.size >= kKvDirect)
    CHECK(s.region, "thread %d: KV %s of %zu bytes (>= kv_direct) is not a region", index, what,
          s.size);
  if (s.region) {
    CHECK((reinterpret_cast<uintptr_t>(s.p) & 4095) == 0, "region %p not page-aligned", s.p);
    CHECK(s.usable % 4096 == 0 && s.usable >= s.size, "region %p: usable %zu for %zu bytes",
          s.p, s.usable, s.size);
    ++n.regions_made;
  }
}

void Worker::free_slot(int i) {
  Slot &s = slots[i];
  if (s.kind == kFree) return;
  CHECK(check(s.p, 0, s.size, s.seed), "thread %d: block %p (%zu bytes, kind %d) damaged before free",
        index, s.p, s.size, s.kind);
  CHECK(malloc_usable_size(s.p) == s.usable, "thread %d: usable size of %p changed: %zu -> %zu",
        index, s.p, s.usable, malloc_usable_size(s.p));
  CHECK((allocscope_is_region(s.p) != 0) == s.region, "thread %d: %p region status changed",
        index, s.p);
  switch (s.kind) {
    case kMalloc: free(s.p); break;
    case kNew:
#if __cpp_sized_deallocation
      if (rng.percent(50)) ::operator delete(s.p, s.size);
      else
#endif
        ::operator delete(s.p);
      break;
    case kNewArray: delete[] static_cast<char *>(s.p); break;
    case kNewAligned:
#if __cpp_sized_deallocation
      if (rng.percent(50)) ::operator delete(s.p, s.size, std::align_val_t(s.align));
      else
#endif
        ::operator delete(s.p, std::align_val_t(s.align));
      break;
    case kFree: break;
  }
  held -= s.usable;
  s = Slot{};
}

// Before a NOFAIL allocation: give back what this thread holds beyond kNofailHold and its
// whole cache, so that NOFAIL allocations can always be satisfied (see the top).
void Worker::before_nofail() {
  if (nofail_since.load(std::memory_order_relaxed) == 0) nofail_since.store(now_ns());
  for (int i = 0; i < kSlots && held > kNofailHold; ++i) free_slot(i);
  for (auto &c : cache) {
    void *p = c.exchange(nullptr);
    if (p != nullptr) {
      check_tag(p, kCacheMax, "cache");
      free(p);
    }
  }
}

void Worker::alloc_into(int i, size_t size) {
  // Plain malloc, or the call-site API with random flags.
  const bool api = rng.percent(40);
  const allocscope_flags_t call = api ? random_call_flags() : 0;
  const Contract c = resolve(allocscope_current(), call);
  prepare(c, &size);
  if (slots[i].kind != kFree) free_slot(i);  // before_nofail may not have freed it
  const bool kv_ctx = (allocscope_current() | call) & ALLOCSCOPE_KV;
  if (kv_ctx && size >= kKvDirect) ++n.kv_direct;
  void *p = api ? allocscope_alloc(size, call) : malloc(size);
  if (p == nullptr) {
    CHECK(errno == ENOMEM, "allocation failed with errno %d, not ENOMEM", errno);
    return failed(c, call);
  }
  const uint64_t seed = rng.next();
  store(i, p, size, seed, kMalloc);
  check_region(slots[i], kv_ctx, true, "malloc");
  fill(p, 0, size, seed);
}

void Worker::slot_toggle() {
  const int i = static_cast<int>(rng.below(kSlots));
  if (slots[i].kind != kFree) free_slot(i);
  else alloc_into(i, random_size());
}

void Worker::realloc_chain() {
  int i = static_cast<int>(rng.below(kSlots));
  if (slots[i].kind != kMalloc) {
    if (slots[i].kind != kFree) return;
    alloc_into(i, random_size());
    if (slots[i].kind != kMalloc) return;
  }
  const bool kv_scope = rng.percent(30);
  allocscope::Scope kv(kv_scope ? ALLOCSCOPE_KV : 0);
  const int steps = static_cast<int>(rng.between(1, 6));
  for (int step = 0; step < steps && slots[i].kind == kMalloc; ++step) {
    Slot &s = slots[i];
    size_t size;
    const uint64_t r = rng.below(10);
    if (r < 4) size = s.size + rng.between(1, s.size * 2 + 64);         // grow
    else if (r < 7) size = rng.between(1, s.size);                      // shrink
    else if (r < 8) size = rng.between(kKvDirect, kMaxBlock);           // jump to a region
    else if (r < 9) size = rng.between(1, kKvThreshold - 1);            // back to the arena
    else size = rng.between(kKvThreshold, kKvDirect);                   // in between
    if (size > kMaxBlock) size = kMaxBlock;
    if (rng.percent(2)) {  // realloc(p, 0) frees and returns NULL
      CHECK(check(s.p, 0, s.size, s.seed), "thread %d: block damaged before realloc(p, 0)", index);
      errno = 0;
      void *q = rng.percent(50) ? realloc(s.p, 0) : allocscope_realloc(s.p, 0, 0);
      CHECK(q == nullptr, "realloc(p, 0) returned %p", q);
      held -= s.usable;
      s = Slot{};
      return;
    }
    const bool api = rng.percent(50);
    const allocscope_flags_t call = api ? random_call_flags() : 0;
    const Contract c = resolve(allocscope_current(), call);
    if (c == kNofail) {
      if (size > kNofailMax) size = kNofailMax;
      const Slot keep = s;
      s = Slot{};  // before_nofail must not free this block
      held -= keep.usable;
      before_nofail();
      s = keep;
      held += keep.usable;
    }
    const bool kv_ctx = (allocscope_current() | call) & ALLOCSCOPE_KV;
    if (kv_ctx && size >= kKvDirect && !s.region) ++n.kv_direct;
    const bool was_region = s.region;
    errno = 0;
    void *q = api ? allocscope_realloc(s.p, size, call) : realloc(s.p, size);
    ++n.realloc_steps;
    if (q == nullptr) {
      CHECK(errno == ENOMEM, "realloc failed with errno %d", errno);
      CHECK(check(s.p, 0, s.size, s.seed), "thread %d: block damaged by a failed realloc", index);
      failed(c, call);
      continue;
    }
    const size_t kept = size < s.size ? size : s.size;
    CHECK(check(q, 0, kept, s.seed),
          "thread %d: realloc %p (%zu bytes%s) -> %p (%zu bytes%s) lost the contents", index, s.p,
          s.size, was_region ? ", region" : "", q, size, allocscope_is_region(q) ? ", region" : "");
    held -= s.usable;
    const uint64_t seed = s.seed;
    const size_t old_size = s.size;
    s = Slot{};
    store(i, q, size, seed, kMalloc);
    if (was_region && size >= kKvThreshold)
      CHECK(slots[i].region, "thread %d: region realloc'ed to %zu bytes left the region", index,
            size);
    check_region(slots[i], kv_ctx, false, "realloc");
    if (size > old_size) fill(q, old_size, size, seed);
  }
}

void Worker::exchange_op() {
  std::atomic<void *> &x = g_exchange[rng.below(g_exchange_slots)];
  void *p = x.exchange(nullptr);
  if (p != nullptr) {  // another thread's block (or ours): check and free it
    check_tag(p, kCacheMax, "exchange");
    if (rng.percent(50)) free(p);
    else allocscope_realloc(p, 0, 0);
    ++n.exchanged;
    return;
  }
  size_t size = rng.between(sizeof(Header), kExchangeMax);
  const Contract c = resolve(allocscope_current(), 0);
  prepare(c, &size);
  void *q = malloc(size);
  if (q == nullptr) return failed(c, 0);
  tag(q, size, rng.next());
  void *expected = nullptr;
  if (!x.compare_exchange_strong(expected, q)) free(q);
}

void Worker::cache_refill() {
  for (auto &c : cache) {
    if (c.load(std::memory_order_relaxed) != nullptr || !rng.percent(50)) continue;
    const size_t size = rng.between(4 * kKiB, kCacheMax);
    const allocscope_flags_t call = ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN;
    void *p = allocscope_alloc(size, call);
    if (p == nullptr) return failed(kNowait, call);
    tag(p, size, rng.next());
    void *expected = nullptr;
    if (!c.compare_exchange_strong(expected, p)) free(p);
  }
}

// A reserve (allocscope::Reserve: the reserve and a RESERVE scope) around a few
// allocations that must not fail however tight the budget is: four blocks of at most an
// eighth of it each fit with any size-class rounding and a large block's extra page. The
// blocks stay in the slots; the guard releases what is left. Not in a NOFAIL scope, whose
// wait for a reserve's worth of budget the NOFAIL argument above does not cover.
void Worker::reserve_op() {
  if (allocscope_current() & ALLOCSCOPE_NOFAIL) return;
  const size_t bytes = rng.between(4 * kKiB, 256 * kKiB);
  const Contract c = resolve(allocscope_current(), 0);
  allocscope::Reserve reserve(bytes);
  if (!reserve.ok()) return failed(c, 0);
  ++n.reserves;
  for (int k = 0; k < 4; ++k) {
    const int i = static_cast<int>(rng.below(kSlots));
    if (slots[i].kind != kFree) free_slot(i);
    const size_t size = rng.between(1, bytes / 8);
    void *p = malloc(size);
    CHECK(p != nullptr, "thread %d: RESERVE malloc(%zu) in a reserve of %zu failed", index,
          size, bytes);
    const uint64_t seed = rng.next();
    store(i, p, size, seed, kMalloc);
    fill(p, 0, size, seed);
  }
}

void Worker::nofail_op() {
  const size_t size = rng.between(1, kNofailMax);
  before_nofail();
  const int i = static_cast<int>(rng.below(kSlots));
  if (slots[i].kind != kFree) free_slot(i);
  const bool nowait_scope = allocscope_current() & ALLOCSCOPE_NOWAIT;
  // A NOFAIL scope on plain malloc, or call-site NOFAIL. allocscope_save(NOFAIL) inside a
  // NOWAIT scope is a conflict reported every time (and NOWAIT still wins): rare.
  bool use_scope = rng.percent(30);
  if (use_scope && nowait_scope && nofail_scope_conflicts_left-- <= 0) use_scope = false;
  allocscope_flags_t call = 0;
  Contract c;
  void *p;
  if (nowait_scope) ++n.conflicts;  // either way: the save, or call-site NOFAIL in NOWAIT
  if (use_scope) {
    allocscope::Scope nofail(ALLOCSCOPE_NOFAIL);
    c = resolve(allocscope_current(), 0);
    p = malloc(size);
    if (p == nullptr) return failed(c, 0);
  } else {
    call = ALLOCSCOPE_NOFAIL | (random_call_flags() & ~ALLOCSCOPE_KV);
    c = kNofail;
    p = allocscope_alloc(size, call);
    if (p == nullptr) return failed(c, call);
  }
  if (c == kNofail) ++n.nofail_ok;
  const uint64_t seed = rng.next();
  store(i, p, size, seed, kMalloc);
  check_region(slots[i], allocscope_current() & ALLOCSCOPE_KV, true, "NOFAIL malloc");
  fill(p, 0, size, seed);
}

// Sizes above max_size fail even NOFAIL, with ENOMEM. (Above nofail_max, INT_MAX here,
// NOFAIL is first demoted to RETRY_MAYFAIL, reported: the failure counts there.)
void Worker::sizecap_op() {
  const size_t huge = static_cast<size_t>(PTRDIFF_MAX) + 1 + rng.below(1000);
  if (allocscope_current() & ALLOCSCOPE_NOWAIT) ++n.conflicts;
  errno = 0;
  void *p = allocscope_alloc(huge, ALLOCSCOPE_NOFAIL);
  CHECK(p == nullptr && errno == ENOMEM, "allocscope_alloc(%zu, NOFAIL) = %p, errno %d", huge, p,
        errno);
  sizecap_failed(kNofail, ALLOCSCOPE_NOFAIL);
  errno = 0;
  volatile size_t count = SIZE_MAX / 2;  // volatile: the compiler must not see the overflow
  p = calloc(count, 4);
  CHECK(p == nullptr && errno == ENOMEM, "calloc overflow = %p, errno %d", p, errno);
  sizecap_failed(resolve(allocscope_current(), 0), 0);
}

void Worker::sizecap_failed(Contract c, allocscope_flags_t call) {
  ++n.sizecap;
  if (c == kNofail) {
    ++n.demotions;
    c = kRetryMayfail;
  }
  ++n.failures[c];
  if (!((allocscope_current() | call) & ALLOCSCOPE_NOWARN)) ++n.warned_failures;
}

void Worker::kv_op() {
  const int i = static_cast<int>(rng.below(kSlots));
  if (slots[i].kind != kFree) free_slot(i);
  size_t size = rng.percent(40) ? rng.between(kKvDirect, kMaxBlock)
                                : rng.between(kKvThreshold, kKvDirect - 1);
  const uint64_t how = rng.below(3);
  allocscope_flags_t call = rng.percent(50) ? random_call_flags() : 0;
  void *p;
  Contract c;
  if (how == 0) {  // allocscope_kvmalloc
    c = resolve(allocscope_current(), call);
    prepare(c, &size);
    if (size >= kKvDirect) ++n.kv_direct;
    p = allocscope_kvmalloc(size, call);
  } else if (how == 1) {  // call-site KV
    call |= ALLOCSCOPE_KV;
    c = resolve(allocscope_current(), call);
    prepare(c, &size);
    if (size >= kKvDirect) ++n.kv_direct;
    p = allocscope_alloc(size, call);
  } else {  // a KV scope on plain malloc
    allocscope::Scope kv(ALLOCSCOPE_KV);
    call = 0;
    c = resolve(allocscope_current(), 0);
    prepare(c, &size);
    if (size >= kKvDirect) ++n.kv_direct;
    p = malloc(size);
  }
  if (p == nullptr) return failed(c, call);
  const uint64_t seed = rng.next();
  store(i, p, size, seed, kMalloc);
  check_region(slots[i], true, true, "kvmalloc");
  fill(p, 0, size, seed);
}

void Worker::calloc_op() {
  const int i = static_cast<int>(rng.below(kSlots));
  if (slots[i].kind != kFree) free_slot(i);
  size_t size = random_size();
  const uint64_t how = rng.below(3);
  allocscope_flags_t call = how == 0 ? 0 : random_call_flags();
  const Contract c = resolve(allocscope_current(), call);
  prepare(c, &size);
  const bool kv_ctx = (allocscope_current() | call) & ALLOCSCOPE_KV;
  if (kv_ctx && size >= kKvDirect) ++n.kv_direct;
  void *p = how == 0   ? calloc(1, size)
            : how == 1 ? allocscope_calloc(1, size, call)
                       : allocscope_alloc(size, call | ALLOCSCOPE_ZERO);
  if (p == nullptr) return failed(c, call);
  CHECK(all_zero(p, size), "thread %d: calloc(%zu) (way %d) not zeroed", index, size,
        static_cast<int>(how));
  ++n.zero_checks;
  const uint64_t seed = rng.next();
  store(i, p, size, seed, kMalloc);
  check_region(slots[i], kv_ctx, true, "calloc");
  fill(p, 0, size, seed);
}

void Worker::new_op() {
  const int i = static_cast<int>(rng.below(kSlots));
  if (slots[i].kind != kFree) free_slot(i);
  size_t size = random_size();
  const Contract c = resolve(allocscope_current(), 0);
  prepare(c, &size);
  const bool kv_ctx = allocscope_current() & ALLOCSCOPE_KV;
  if (kv_ctx && size >= kKvDirect) ++n.kv_direct;
  void *p = nullptr;
  Kind kind = kNew;
  size_t align = 0;
  switch (rng.below(4)) {
    case 0:
      try {
        p = ::operator new(size);
      } catch (const std::bad_alloc &) {
        CHECK(c != kNofail, "operator new threw under NOFAIL");
      }
      break;
    case 1: p = ::operator new(size, std::nothrow); break;
    case 2:
      p = new (std::nothrow) char[size];
      kind = kNewArray;
      break;
    case 3:
      align = size_t{1} << rng.between(4, 12);
      kind = kNewAligned;
      try {
        p = ::operator new(size, std::align_val_t(align));
      } catch (const std::bad_alloc &) {
      }
      if (p != nullptr)
        CHECK(reinterpret_cast<uintptr_t>(p) % align == 0, "aligned new: %p not %zu-aligned", p,
              align);
      break;
  }
  if (p == nullptr) return failed(c, 0, true);
  const uint64_t seed = rng.next();
  store(i, p, size, seed, kind, align);
  check_region(slots[i], kv_ctx, true, "operator new");
  fill(p, 0, size, seed);
}

void Worker::aligned_op() {
  const int i = static_cast<int>(rng.below(kSlots));
  if (slots[i].kind != kFree) free_slot(i);
  size_t size = random_size();
  size_t align = size_t{1} << rng.between(3, size < 64 * kKiB ? 16 : 12);
  const uint64_t how = rng.below(4);
  allocscope_flags_t call = how == 3 ? random_call_flags() : 0;
  const Contract c = resolve(allocscope_current(), call);
  prepare(c, &size);
  const bool kv_ctx = (allocscope_current() | call) & ALLOCSCOPE_KV;
  if (kv_ctx && size >= kKvDirect) ++n.kv_direct;
  void *p = nullptr;
  switch (how) {
    case 0: p = aligned_alloc(align, size); break;
    case 1: {
      if (align < sizeof(void *)) align = sizeof(void *);
      const int err = posix_memalign(&p, align, size);
      CHECK(err == 0 || err == ENOMEM, "posix_memalign returned %d", err);
      if (err != 0) p = nullptr;
      break;
    }
    case 2: p = memalign(align, size); break;
    case 3: p = allocscope_aligned_alloc(align, size, call); break;
  }
  if (p == nullptr) return failed(c, call);
  CHECK(reinterpret_cast<uintptr_t>(p) % align == 0, "thread %d: %p not %zu-aligned (way %d)",
        index, p, align, static_cast<int>(how));
  const uint64_t seed = rng.next();
  store(i, p, size, seed, kMalloc);
  check_region(slots[i], kv_ctx, true, "aligned_alloc");
  fill(p, 0, size, seed);
}

void Worker::op() {
  nofail_since.store(0, std::memory_order_relaxed);
  const uint64_t r = rng.below(1000);
  if (r < 400) slot_toggle();
  else if (r < 520) realloc_chain();
  else if (r < 620) exchange_op();
  else if (r < 650) cache_refill();
  else if (r < 670) nofail_op();
  else if (r < 671) sizecap_op();
  else if (r < 690) reserve_op();
  else if (r < 760) kv_op();
  else if (r < 850) calloc_op();
  else if (r < 920) new_op();
  else aligned_op();
  ++ops_done;
  if ((ops_done & 15) == 0) touch();
}

// A run of operations, sometimes inside a nested scope (allocscope::Scope or ClearScope:
// LIFO by construction); returns when the thread reaches stop_at.
void Worker::segment(int depth, long stop_at) {
  const long count = static_cast<long>(rng.between(1, 64));
  for (long k = 0; k < count && ops_done < stop_at; ++k) {
    if (depth < kMaxDepth && rng.percent(5)) {
      const allocscope_flags_t before = allocscope_current();
      ++n.scopes;
      if (rng.percent(70)) {
        allocscope_flags_t flags = random_scope_flags();
        if ((flags & ALLOCSCOPE_NOFAIL) && (before & ALLOCSCOPE_NOWAIT)) {
          if (nofail_scope_conflicts_left-- > 0) ++n.conflicts;  // reported each time: rare
          else flags &= ~ALLOCSCOPE_NOFAIL;
        }
        allocscope::Scope scope(flags);
        CHECK(allocscope_current() == (before | (flags & ~ALLOCSCOPE_ZERO)),
              "thread %d: scope %#x after save(%#x) on %#x", index, allocscope_current(), flags,
              before);
        segment(depth + 1, stop_at);
        CHECK(allocscope_current() == (before | (flags & ~ALLOCSCOPE_ZERO)),
              "thread %d: scope changed inside a segment", index);
      } else {
        const allocscope_flags_t flags = rng.percent(50) ? before & static_cast<allocscope_flags_t>(rng.next())
                                                         : random_scope_flags();
        allocscope::ClearScope clear(flags);
        CHECK(allocscope_current() == (before & ~flags), "thread %d: scope %#x after clear(%#x) on %#x",
              index, allocscope_current(), flags, before);
        segment(depth + 1, stop_at);
      }
      CHECK(allocscope_current() == before, "thread %d: scope %#x after restore, expected %#x",
            index, allocscope_current(), before);
      continue;
    }
    op();
  }
}

void Worker::barrier() {
  where.store(1);
  flush_thread_cache();
  const int generation = g_released.load();
  g_arrived.fetch_add(1);
  while (g_released.load() == generation) {
    touch();
    sleep_ms(1);
  }
  where.store(0);
  touch();
}

void Worker::free_all() {
  for (int i = 0; i < kSlots; ++i) free_slot(i);
  CHECK(held == 0, "thread %d: %zu bytes still counted after freeing every slot", index, held);
  for (auto &c : cache) {
    void *p = c.exchange(nullptr);
    if (p != nullptr) {
      check_tag(p, kCacheMax, "cache");
      free(p);
    }
  }
}

// A thread in a fork child that allocates and frees.
bool child_thread() {
  pthread_t t;
  return pthread_create(&t, nullptr, [](void *) -> void * {
           void *p[100];
           for (int k = 0; k < 100; ++k) p[k] = malloc(static_cast<size_t>(k) * 100 + 1);
           for (int k = 0; k < 100; ++k) free(p[k]);
           return nullptr;
         }, nullptr) == 0 && pthread_join(t, nullptr) == 0;
}

// The child of a fork from this (multithreaded) process: a short workload of its own,
// under its own budget; exit status 0 means it all worked.
void Worker::fork_child_check(allocscope_flags_t scope_at_fork) {
  alarm(30);  // a deadlock in the child (a lock held by a thread that is gone) kills it
  if (allocscope_current() != scope_at_fork) {
    fprintf(stderr, "stress: fork child: scope %#x, expected %#x\n", allocscope_current(),
            scope_at_fork);
    _exit(10);
  }
  // A first thread in the child: glibc puts the stacks of the parent's other threads in
  // its stack cache and, above 40 MiB of them, frees the oldest with their DTVs (which the
  // parent's threads allocated), so the charge drops here. Measure after that. Starting
  // a thread allocates (glibc's DTV, the preload's start block) under the scope inherited
  // from the parent, which may be NOWAIT with the parent's budget full: room first.
  allocscope_limit_set(allocscope_charged() + 32 * kMiB);
  if (!child_thread()) _exit(18);
  // Other threads' live bytes stay charged in the child and nobody frees them here, so
  // the child gives itself room: its own limit above what is charged now.
  const size_t base = allocscope_charged();
  allocscope_limit_set(base + 32 * kMiB);
  Rng r(1000 + index);
  void *blocks[64] = {};
  size_t sizes[64] = {};
  for (int k = 0; k < 2000; ++k) {
    const int i = static_cast<int>(r.below(64));
    if (blocks[i] != nullptr) {
      if (!check_range(blocks[i], 0, sizes[i], i)) _exit(11);
      free(blocks[i]);
      blocks[i] = nullptr;
      continue;
    }
    sizes[i] = r.percent(90) ? r.between(1, 4096) : r.between(4096, 256 * kKiB);
    blocks[i] = r.percent(20) ? allocscope_alloc(sizes[i], ALLOCSCOPE_NOFAIL) : malloc(sizes[i]);
    if (blocks[i] == nullptr) _exit(12);
    fill(blocks[i], 0, sizes[i], i);
    if (r.percent(10)) {
      void *q = realloc(blocks[i], sizes[i] * 2 + 1);
      if (q == nullptr || !check_range(q, 0, sizes[i], i)) _exit(13);
      blocks[i] = q;
      fill(q, 0, sizes[i] * 2 + 1, i);
      sizes[i] = sizes[i] * 2 + 1;
    }
  }
  for (int i = 0; i < 64; ++i) free(blocks[i]);
  void *region = allocscope_kvmalloc(2 * kMiB, 0);  // kv_direct 1M: a region
  if (region == nullptr || !allocscope_is_region(region)) _exit(14);
  fill(region, 0, 2 * kMiB, 7);
  // Growing a region moves its pages with mremap(MREMAP_DONTUNMAP): Linux 5.7 and later,
  // and not under valgrind 3.19. Where the kernel refuses, realloc fails and keeps it.
  void *grown = realloc(region, 3 * kMiB);
  if (grown == nullptr) {
    if (errno != ENOMEM || !check(region, 0, 2 * kMiB, 7)) _exit(15);
    fprintf(stderr, "stress: fork child: a region could not grow (mremap refused?)\n");
  } else {
    if (!check(grown, 0, 2 * kMiB, 7)) _exit(15);
    region = grown;
  }
  free(region);
  errno = 0;
  if (allocscope_alloc(64 * kMiB, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN) != nullptr || errno != ENOMEM)
    _exit(16);  // above the child's limit
  void *z = calloc(1, 100 * kKiB);
  if (z == nullptr || !all_zero(z, 100 * kKiB)) _exit(17);
  free(z);
  if (!child_thread()) _exit(18);
  // Everything the child allocated is freed: its charge is back where it started (exactly,
  // unless a refill that failed resynchronised the count with jemalloc's total, which may
  // only lower it; see policy/budget.h).
  const size_t end = allocscope_charged();
  if (end > base) {
    fprintf(stderr, "stress: fork child: charged %zu at the start, %zu at the end\n", base, end);
    _exit(19);
  }
  _exit(0);
}

void Worker::run() {
  CHECK(allocscope_current() == 0, "thread %d starts with scope %#x", index, allocscope_current());
  reclaim_class = static_cast<unsigned>(index % 16);
  reclaimer_id = allocscope_reclaimer_add("stress cache", reclaim_class, reclaim_cache, this);
  CHECK(reclaimer_id > 0, "allocscope_reclaimer_add: %d", reclaimer_id);
  free(malloc(1));  // jemalloc's per-thread state exists before the baselines
  barrier();  // start

  // Join the budget: a thread is counted from its first allocation under the limit, and
  // frees it makes before that would not be (policy/budget.h).
  free(malloc(1));
  const long half = ops_target / 2;
  while (ops_done < half) segment(0, half);
  barrier();  // middle: blocks still live

  const bool forks = index < g_opt.forks;
  const long fork_at = half + (ops_target - half) * (index + 1) / (2 * (g_opt.forks + 1));
  if (forks) {
    while (ops_done < fork_at) segment(0, fork_at);
    allocscope::Scope scope(ALLOCSCOPE_KV | ALLOCSCOPE_NOWARN);
    const allocscope_flags_t at_fork = allocscope_current();
    where.store(2);
    const pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) fork_child_check(at_fork);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "thread %d: fork child %s %d", index, WIFSIGNALED(status) ? "killed by signal" : "exited",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    ++n.forks;
    where.store(0);
    touch();
  }
  while (ops_done < ops_target) segment(0, ops_target);
  CHECK(allocscope_current() == 0, "thread %d ends with scope %#x", index, allocscope_current());

  CHECK(allocscope_reclaimer_remove(reclaimer_id) == 0, "allocscope_reclaimer_remove failed");
  free_all();
  barrier();  // end: everything freed
  where.store(3);
}

void *worker_main(void *arg) {
  static_cast<Worker *>(arg)->run();
  return nullptr;
}

void *watchdog_main(void *) {
  const uint64_t limit_ns = static_cast<uint64_t>(g_opt.stall_seconds) * 1000000000u;
  while (!g_done.load()) {
    sleep_ms(200);
    const uint64_t now = now_ns();
    for (int i = 0; i < g_opt.threads; ++i) {
      Worker &w = g_workers[i];
      if (w.where.load() == 3) continue;
      const uint64_t last = w.progress_ns.load();
      if (last != 0 && last < now && now - last > limit_ns) {  // touched after `now`: fine
        fprintf(stderr, "stress: watchdog: thread %d made no progress for %d s (at op %ld of %ld, "
                "state %d); all threads:\n", i, g_opt.stall_seconds, w.progress_ops.load(),
                w.ops_target, w.where.load());
        for (int j = 0; j < g_opt.threads; ++j)
          fprintf(stderr, "  thread %d: op %ld, state %d, %.1f s since progress\n", j,
                  g_workers[j].progress_ops.load(), g_workers[j].where.load(),
                  (static_cast<double>(now) - g_workers[j].progress_ns.load()) / 1e9);
        die("deadlock or NOFAIL never satisfied (watchdog, %d s)", g_opt.stall_seconds);
      }
    }
  }
  return nullptr;
}

// Main's side of a barrier: waits until every worker is parked. A worker still running
// may be in a NOFAIL allocation that only a free by a parked worker could satisfy: when
// one has been in a NOFAIL operation for 500 ms the limit is raised out of the way (same
// accounting generation, so the charge stays exact), and restored before the barrier is
// released. Returns whether it was raised.
int g_barrier_lifts = 0;
bool wait_for_workers() {
  bool lifted = false;
  while (g_arrived.load() < g_opt.threads) {
    sleep_ms(1);
    bool stuck = false;
    const uint64_t now = now_ns();
    for (int i = 0; i < g_opt.threads; ++i) {
      const uint64_t since = g_workers[i].nofail_since.load();
      if (g_workers[i].where.load() == 0 && since != 0 && since < now && now - since > 500000000u)
        stuck = true;
    }
    if (!lifted && stuck && allocscope_limit_get() != 0) {
      lifted = true;
      ++g_barrier_lifts;
      allocscope_limit_set(size_t{1} << 50);
    }
  }
  return lifted;
}
void release_workers(size_t limit) {
  if (limit != 0) allocscope_limit_set(limit);
  g_arrived.store(0);
  g_released.fetch_add(1);
}

long long heap_live(const Snapshot &s) { return s.nmalloc - s.ndalloc; }

// The budget at a barrier (every thread cache flushed, nothing allocating). Without a
// resynchronisation (policy/budget.h: a refill about to fail lowers the count to
// jemalloc's total if that is smaller) the charge is exact: its value at the start plus
// the live blocks' usable sizes. A resynchronisation may only lower it, and never below
// what is really live (jemalloc's live bytes plus the regions').
int g_resynced_barriers = 0;
void check_charge(const char *where, size_t charged0, size_t charged, size_t live_bytes,
                  long long region_bytes) {
  const size_t exact = charged0 + live_bytes;
  const size_t floor = heap_live_bytes() + static_cast<size_t>(region_bytes);
  printf("stress: %s: charged %zu, start + live blocks %zu (%+lld), really live %zu\n", where,
         charged, exact, static_cast<long long>(charged) - static_cast<long long>(exact), floor);
  fflush(stdout);
  CHECK(charged <= exact, "%s: charged %zu is above the start's %zu plus the live blocks' %zu",
        where, charged, charged0, live_bytes);
  CHECK(charged >= floor,
        "%s: charged %zu is below what is live (%zu: jemalloc's live bytes plus regions): the "
        "budget lost %zu bytes", where, charged, floor, floor - charged);
  if (charged != exact) ++g_resynced_barriers;
}

// ---- Churn: key destructors and cancellation (see the top). ----

constexpr int kChurnThreads = 16;
constexpr size_t kChurnBlock = 256 * kKiB;
pthread_key_t g_frees_key, g_allocates_key;
void *g_made_in_destructors[kChurnThreads];
std::atomic<int> g_made_count{0};
std::atomic<bool> g_waiter_returned{false};

void *churn_thread(void *) {
  void *p = malloc(kChurnBlock);
  CHECK(p != nullptr, "churn: malloc");
  memset(p, 7, kChurnBlock);
  pthread_setspecific(g_frees_key, p);                  // freed by a key destructor
  pthread_setspecific(g_allocates_key, &g_allocates_key);  // allocates in one
  return nullptr;
}

void *nofail_waiter(void *) {
  void *p = allocscope_alloc(4 * kMiB, ALLOCSCOPE_NOFAIL);
  g_waiter_returned = p != nullptr;
  free(p);
  pthread_testcancel();
  return nullptr;
}

bool someone_exiting() {
  char json[16384];
  allocscope_stats_json(json, sizeof(json));
  const char *engaged = strstr(json, "\"engaged\":\"");
  return engaged != nullptr && strstr(engaged, "exiting") != nullptr &&
         strstr(engaged, "exiting") < strchr(engaged + 11, '"');
}

void churn_round(bool cancel) {
  g_made_count = 0;
  pthread_t threads[kChurnThreads];
  for (pthread_t &t : threads)
    CHECK(pthread_create(&t, nullptr, churn_thread, nullptr) == 0, "churn: pthread_create");
  for (pthread_t &t : threads) CHECK(pthread_join(t, nullptr) == 0, "churn: pthread_join");
  CHECK(g_made_count.load() == kChurnThreads, "churn: %d allocations in destructors",
        g_made_count.load());
  for (int i = 0; i < kChurnThreads; ++i) free(g_made_in_destructors[i]);
  if (!cancel) return;
  // The limit is full but for 1 MiB: the waiter's 4 MiB NOFAIL allocation waits.
  const size_t room = allocscope_limit_get() - allocscope_charged();
  void *ballast = malloc(room - kMiB);
  CHECK(ballast != nullptr, "churn: ballast");
  g_waiter_returned = false;
  pthread_t waiter;
  CHECK(pthread_create(&waiter, nullptr, nofail_waiter, nullptr) == 0, "churn: waiter");
  sleep_ms(50);
  CHECK(pthread_cancel(waiter) == 0, "churn: pthread_cancel");
  sleep_ms(20);
  CHECK(!g_waiter_returned.load(), "churn: the cancelled waiter returned before a free");
  free(ballast);
  void *result;
  CHECK(pthread_join(waiter, &result) == 0, "churn: join the waiter");
  CHECK(result == PTHREAD_CANCELED && g_waiter_returned.load(),
        "churn: the waiter was not cancelled after its allocation returned");
}

void churn_phase() {
  CHECK(pthread_key_create(&g_frees_key, free) == 0, "pthread_key_create");
  CHECK(pthread_key_create(&g_allocates_key,
                           [](void *) {
                             // A quarter of what the other destructor frees: were
                             // either lost to the budget, the two would not cancel out.
                             void *p = malloc(kChurnBlock / 4);
                             CHECK(p != nullptr, "churn: malloc in a key destructor");
                             g_made_in_destructors[g_made_count++] = p;
                           }) == 0,
        "pthread_key_create");
  CHECK(allocscope_limit_set(allocscope_charged() + 16 * kMiB) == 0, "churn: limit");
  churn_round(true);  // warm-up: glibc's stack cache now holds what the rounds reuse
  for (int i = 0; i < 1000 && someone_exiting(); ++i) sleep_ms(2);
  flush_thread_cache();
  const size_t baseline = allocscope_charged();
  for (int round = 0; round < 8; ++round) churn_round(round % 2 == 0);
  for (int i = 0; i < 1000 && someone_exiting(); ++i) sleep_ms(2);
  CHECK(!someone_exiting(), "churn: threads still exiting after 2 s");
  flush_thread_cache();
  const size_t after = allocscope_charged();
  printf("stress: churn: %d threads freeing and allocating in key destructors and 4 "
         "cancelled NOFAIL waiters: charged %+lld bytes from the baseline\n",
         8 * kChurnThreads, static_cast<long long>(after) - static_cast<long long>(baseline));
  CHECK(after == baseline, "churn: charged %zu, baseline %zu", after, baseline);
  CHECK(allocscope_limit_set(0) == 0, "churn: removing the limit");
}

void usage() {
  fprintf(stderr, "usage: stress THREADS(2-64) OPS [SEED] [--forks N] [--stall-seconds S] "
                  "[--budget-mib M]\n");
  exit(2);
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 3) usage();
  g_opt.threads = atoi(argv[1]);
  g_opt.ops = atol(argv[2]);
  int arg = 3;
  if (arg < argc && argv[arg][0] != '-') g_opt.seed = strtoull(argv[arg++], nullptr, 0);
  for (; arg < argc; ++arg) {
    if (strcmp(argv[arg], "--forks") == 0 && arg + 1 < argc) g_opt.forks = atoi(argv[++arg]);
    else if (strcmp(argv[arg], "--stall-seconds") == 0 && arg + 1 < argc)
      g_opt.stall_seconds = atoi(argv[++arg]);
    else if (strcmp(argv[arg], "--budget-mib") == 0 && arg + 1 < argc)
      g_opt.budget = static_cast<size_t>(atol(argv[++arg])) * kMiB;
    else usage();
  }
  if (g_opt.threads < 2 || g_opt.threads > 64 || g_opt.ops < 100) usage();
  if (g_opt.forks > g_opt.threads) g_opt.forks = g_opt.threads;
  const size_t T = static_cast<size_t>(g_opt.threads);
  if (g_opt.budget == 0) g_opt.budget = T * 3 * kMiB / 2 + 8 * kMiB;
  // The NOFAIL guarantee (see the top): with every thread waiting at once, what is charged.
  const size_t worst_all_waiting = T * (kNofailHold + kNofailMax + 192 * kKiB) +
                                   2 * T * kExchangeMax + kEmergency;
  CHECK(g_opt.budget > worst_all_waiting, "budget %zu MiB too small for NOFAIL to progress (%zu)",
        g_opt.budget / kMiB, worst_all_waiting);

  if (allocscope_active() != 1) {
    fprintf(stderr, "stress: allocscope is not active in this process (run it under "
                    "LD_PRELOAD=liballocscope.so)\n");
    return 3;
  }
  g_mallctl = reinterpret_cast<mallctl_fn>(dlsym(RTLD_DEFAULT, "mallctl"));
  CHECK(g_mallctl != nullptr, "mallctl not found (the preload exports it)");
  CHECK(allocscope_config("kv_threshold:64K,kv_direct:1M,emergency:1M,retry_max:4,"
                          "stall_warn_ms:5000,warn_burst:10,nofail_in_nowait:wait,"
                          "nofail_overdraw_ms:0,strict:false,warn:true") == 0,
        "allocscope_config refused the stress configuration");
  // STRESS_CONF: more configuration for a debugging run, e.g. log_file:/tmp/x,warn_burst:0.
  if (const char *extra = getenv("STRESS_CONF"))
    CHECK(allocscope_config(extra) == 0, "allocscope_config refused STRESS_CONF");
  CHECK(allocscope_limit_get() == 0, "a limit is already set (ALLOCSCOPE_CONF?)");

  printf("stress: %d threads x %ld operations, seed %llu, %d forks, budget %zu MiB\n",
         g_opt.threads, g_opt.ops, static_cast<unsigned long long>(g_opt.seed), g_opt.forks,
         g_opt.budget / kMiB);
  fflush(stdout);

  // Everything the run needs is allocated before the baselines.
  g_exchange_slots = 2 * g_opt.threads;
  g_exchange = new std::atomic<void *>[g_exchange_slots];
  for (int i = 0; i < g_exchange_slots; ++i) g_exchange[i].store(nullptr);
  g_workers = new Worker[g_opt.threads];
  for (int i = 0; i < g_opt.threads; ++i) {
    g_workers[i].index = i;
    g_workers[i].rng = Rng(g_opt.seed * 1000003u + static_cast<uint64_t>(i));
    g_workers[i].ops_target = g_opt.ops;
    g_workers[i].touch();
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 1 << 20);

  flush_thread_cache();
  const size_t charged_before_threads = allocscope_charged();

  pthread_t watchdog;
  CHECK(pthread_create(&watchdog, nullptr, watchdog_main, nullptr) == 0, "pthread_create");
  for (int i = 0; i < g_opt.threads; ++i)
    CHECK(pthread_create(&g_workers[i].thread, &attr, worker_main, &g_workers[i]) == 0,
          "pthread_create");

  // ---- Start barrier: baselines, then the limit. ----
  wait_for_workers();
  flush_thread_cache();
  const Snapshot s0 = snapshot();
  const size_t allocated0 = allocscope_charged();  // no limit: jemalloc's stats.allocated
  const size_t limit = allocated0 + g_opt.budget;
  CHECK(allocscope_limit_set(limit) == 0 && allocscope_limit_get() == limit, "allocscope_limit_set");
  const size_t charged0 = allocscope_charged();
  CHECK(charged0 == allocated0, "charged %zu right after setting the limit, jemalloc %zu", charged0,
        allocated0);
  free(malloc(1));  // main joins the budget too: it frees the exchange's leftovers at the end
  CHECK(allocscope_charged() == charged0, "charged moved by a malloc/free pair");
  const uint64_t t0 = now_ns();
  release_workers(0);

  // ---- Middle barrier: live blocks against the heap's counters and the budget. ----
  const bool lifted = wait_for_workers();
  flush_thread_cache();
  {
    const Snapshot s1 = snapshot();
    const size_t charged1 = allocscope_charged();
    long long blocks = 0, regions = 0;
    size_t bytes = 0, region_bytes = 0;
    auto count = [&](void *p) {
      const size_t usable = malloc_usable_size(p);
      bytes += usable;
      if (allocscope_is_region(p)) {
        ++regions;
        region_bytes += usable;
      } else {
        ++blocks;
      }
    };
    for (int i = 0; i < g_opt.threads; ++i) {
      for (const Slot &s : g_workers[i].slots)
        if (s.kind != kFree) count(s.p);
      for (auto &c : g_workers[i].cache)
        if (void *p = c.load()) count(p);
    }
    for (int i = 0; i < g_exchange_slots; ++i)
      if (void *p = g_exchange[i].load()) count(p);
    printf("stress: middle: %lld live blocks (%lld regions), %zu bytes; charged %+lld, heap "
           "nmalloc-ndalloc %+lld, kv.regions %lld (%lld bytes)\n",
           blocks + regions, regions, bytes,
           static_cast<long long>(charged1) - static_cast<long long>(charged0),
           heap_live(s1) - heap_live(s0), s1.regions, s1.region_bytes);
    fflush(stdout);  // a fork child must not inherit unwritten output
    check_charge("middle", charged0, charged1, bytes, s1.region_bytes);
    // The limit held: what is really live is at most the limit, the emergency allowance
    // (MEMALLOC) and each thread's size-class rounding on its allowance (budget.h: under
    // 2 x 64 KiB), unless the limit was raised for a NOFAIL waiter just now.
    const size_t live = heap_live_bytes() + static_cast<size_t>(s1.region_bytes);
    const size_t cap = limit + kEmergency + static_cast<size_t>(g_opt.threads) * 128 * kKiB;
    printf("stress: middle: really live %zu, limit %zu (+ emergency and rounding: %zu)%s\n", live,
           limit, cap, lifted ? "; the limit was raised for a NOFAIL waiter" : "");
    fflush(stdout);
    CHECK(lifted || live <= cap, "middle: %zu bytes live under a limit of %zu (%zu allowed)", live,
          limit, cap);
    CHECK(heap_live(s1) - heap_live(s0) == blocks,
          "middle: heap nmalloc-ndalloc grew by %lld, %lld jemalloc blocks are live",
          heap_live(s1) - heap_live(s0), blocks);
    CHECK(s1.regions == regions && s1.region_bytes == static_cast<long long>(region_bytes),
          "middle: stats say %lld regions (%lld bytes), %lld live (%zu bytes)", s1.regions,
          s1.region_bytes, regions, region_bytes);
  }
  release_workers(limit);

  // ---- End barrier: everything freed. ----
  wait_for_workers();
  const uint64_t t1 = now_ns();
  flush_thread_cache();
  const Snapshot s2 = snapshot();
  const size_t charged2 = allocscope_charged();
  for (int i = 0; i < g_exchange_slots; ++i) {  // what was left in the exchange
    if (void *p = g_exchange[i].exchange(nullptr)) {
      check_tag(p, kCacheMax, "exchange");
      free(p);
    }
  }
  flush_thread_cache();
  const Snapshot s3 = snapshot();
  const size_t charged3 = allocscope_charged();
  check_charge("end", charged0, charged3, 0, s3.region_bytes);
  CHECK(heap_live(s3) == heap_live(s0), "end: heap nmalloc-ndalloc %lld, %lld at the start",
        heap_live(s3), heap_live(s0));
  CHECK(s3.regions == 0 && s3.region_bytes == 0, "end: %lld regions (%lld bytes) left", s3.regions,
        s3.region_bytes);
  CHECK(allocscope_limit_set(0) == 0 && allocscope_limit_get() == 0, "removing the limit");
  const size_t allocated3 = allocscope_charged();
  CHECK(allocated3 == allocated0, "end: jemalloc's allocated %zu, %zu at the start (%+lld)",
        allocated3, allocated0,
        static_cast<long long>(allocated3) - static_cast<long long>(allocated0));
  (void)s2;
  (void)charged2;

  // Counters against the stats.
  Counts total = {};
  long long reclaim_calls = 0, reclaimed = 0;
  for (int i = 0; i < g_opt.threads; ++i) {
    const Counts &c = g_workers[i].n;
    for (int k = 0; k < kContracts; ++k) {
      total.failures[k] += c.failures[k];
      total.new_failures[k] += c.new_failures[k];
    }
    total.warned_failures += c.warned_failures;
    total.conflicts += c.conflicts;
    total.kv_direct += c.kv_direct;
    total.nofail_ok += c.nofail_ok;
    total.regions_made += c.regions_made;
    total.zero_checks += c.zero_checks;
    total.realloc_steps += c.realloc_steps;
    total.exchanged += c.exchanged;
    total.sizecap += c.sizecap;
    total.demotions += c.demotions;
    total.forks += c.forks;
    total.scopes += c.scopes;
    total.reserves += c.reserves;
    reclaim_calls += g_workers[i].reclaim_calls.load();
    reclaimed += g_workers[i].reclaimed.load();
  }
  long long all_new_failures = 0, stalls = 0, waits = 0;
  for (int k = 0; k < kContracts; ++k) {
    all_new_failures += total.new_failures[k];
    stalls += s3.stalls[k] - s0.stalls[k];
    waits += s3.waits[k] - s0.waits[k];
  }

  const double seconds = (t1 - t0) / 1e9;
  printf("stress: %d threads, %lld operations in %.2f s (%.0f ops/s), %lld forks, %lld scopes, "
         "%lld reserves\n",
         g_opt.threads, static_cast<long long>(g_opt.threads) * g_opt.ops, seconds,
         g_opt.threads * g_opt.ops / seconds, total.forks, total.scopes, total.reserves);
  printf("stress: failures: nowait %lld, noretry %lld, normal %lld, retry_mayfail %lld, "
         "nofail %lld; %lld of them size caps (%lld NOFAIL demoted to retry_mayfail), %lld "
         "from operator new\n",
         total.failures[kNowait], total.failures[kNoretry], total.failures[kNormal],
         total.failures[kRetryMayfail], total.failures[kNofail], total.sizecap, total.demotions,
         all_new_failures);
  printf("stress: NOFAIL successes %lld (waits %lld, stalls %lld), reclaimer calls %lld "
         "(%lld bytes), regions %lld (kv.direct %lld, fallbacks %lld, moves %lld, grown in place "
         "%lld), realloc steps %lld, zero checks %lld, exchanged %lld, barrier lifts %d\n",
         total.nofail_ok, waits, stalls, reclaim_calls, reclaimed, total.regions_made,
         s3.kv_direct - s0.kv_direct, s3.kv_fallbacks - s0.kv_fallbacks,
         s3.remap_moves - s0.remap_moves, s3.grown_in_place - s0.grown_in_place,
         total.realloc_steps, total.zero_checks, total.exchanged, g_barrier_lifts);

  for (int k = 0; k < kContracts; ++k)
    printf("stress: %s failures: engine %lld, program %lld (operator new %lld)\n",
           kContractNames[k], s3.failures[k] - s0.failures[k], total.failures[k],
           total.new_failures[k]);
  fflush(stdout);
  for (int k = 0; k < kContracts; ++k) {
    const long long engine = s3.failures[k] - s0.failures[k];
    CHECK(engine >= total.failures[k] && engine <= total.failures[k] + total.new_failures[k],
          "%s failures: the engine counted %lld, the program saw %lld (%lld from operator new)",
          kContractNames[k], engine, total.failures[k], total.new_failures[k]);
  }
  // Demotions are reported whatever NOWARN says.
  const long long reports = (s3.reports - s0.reports) + (s3.suppressed - s0.suppressed);
  const long long expected_reports = total.warned_failures + stalls + total.demotions;
  CHECK(reports >= expected_reports && reports <= expected_reports + all_new_failures,
        "reports %lld (+suppressed), expected %lld failures without NOWARN + %lld stalls + %lld "
        "NOFAIL demotions", reports, total.warned_failures, stalls, total.demotions);
  CHECK(s3.demotions - s0.demotions == total.demotions, "nofail_demotions: stats %lld, expected %lld",
        s3.demotions - s0.demotions, total.demotions);
  CHECK(s3.conflicts - s0.conflicts == total.conflicts, "conflicts: stats %lld, expected %lld",
        s3.conflicts - s0.conflicts, total.conflicts);
  CHECK(s3.misuse == s0.misuse, "misuse counted %lld times", s3.misuse - s0.misuse);
  CHECK(s3.kv_direct - s0.kv_direct == total.kv_direct, "kv.direct: stats %lld, expected %lld",
        s3.kv_direct - s0.kv_direct, total.kv_direct);
  CHECK(s3.reclaimer_calls - s0.reclaimer_calls == reclaim_calls,
        "reclaimer_calls: stats %lld, the reclaimers ran %lld times",
        s3.reclaimer_calls - s0.reclaimer_calls, reclaim_calls);
  CHECK(s3.overdraws == s0.overdraws, "NOFAIL overdrew the limit (nofail_overdraw_ms is 0)");
  CHECK(total.forks == g_opt.forks, "%lld forks, expected %d", total.forks, g_opt.forks);

  // ---- Workers exit: their allowances go back. ----
  release_workers(0);
  for (int i = 0; i < g_opt.threads; ++i) pthread_join(g_workers[i].thread, nullptr);
  g_done.store(true);
  pthread_join(watchdog, nullptr);
  flush_thread_cache();
  const size_t charged_after = allocscope_charged();
  const long long drift =
      static_cast<long long>(charged_after) - static_cast<long long>(charged_before_threads);
  const long long tolerance = 64 * 1024 + 4096 * static_cast<long long>(g_opt.threads);
  printf("stress: charged after the threads exited %+lld bytes from before they started "
         "(tolerance %lld)\n", drift, tolerance);
  fflush(stdout);
  CHECK(drift <= tolerance && drift >= -tolerance, "charged drifted by %lld bytes", drift);
  churn_phase();
  delete[] g_workers;
  delete[] g_exchange;
  printf("stress: ok\n");
  return 0;
}
