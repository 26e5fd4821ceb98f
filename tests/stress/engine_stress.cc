// engine_stress.cc: the engine (policy/) from many threads, linked directly and driven
// through its C++ API, without the preload, so that it runs under ASan/UBSan and TSan
// (whose runtimes replace malloc, which rules out the preload there).
//
//   engine_stress THREADS OPS [SEED]
//
// Workers call allocate() with Requests of every kind (fresh, realloc with `old`, aligned,
// ZERO, KV with kv_direct so that regions are made, grown, shrunk and moved back to the
// arena), make reserves whose RESERVE allocations must not fail, call
// release()/release_sized(), scope_save/scope_clear/scope_restore in random LIFO
// nesting, and hand blocks to each other through an exchange array. Each registers a
// reclaimer (reclaim::add, classes 0-15) that frees its cache, and now and then removes and
// re-adds it while other threads' reclaim passes may be running it. A tight limit makes
// allocations fail; NOFAIL ones must not (the same argument as stress.cc: before a NOFAIL
// request a thread frees down to 512 KiB and empties its cache). A control thread
// meanwhile applies configurations (apply_config: warn_burst, retry_max, emergency,
// arena_limit, the default policy, log_file, nowait_reserve), moves the limit between
// the budget and twice it, and reads charged() and stats_json(). Blocks carry patterns checked before every
// free and after every realloc; zeroed requests are checked.
//
// At the end, with every worker gone (each has allocated since the limit was set, so each
// has joined the budget and its frees are counted):
//   - budget::charged() equals its value when the limit was set (the workers' net bytes
//     are exact from jemalloc's per-thread counters, and they freed all), unless a refill
//     resynchronised it with jemalloc's total, which may only lower it and never below
//     what is really live;
//   - region::stats() shows no region left;
//   - the heap's nmalloc - ndalloc is back to its start (every thread cache was flushed
//     when its thread exited; this program's own malloc is not jemalloc, so nothing else
//     allocates from it);
//   - the reclaimer calls counted by the stats equal the calls the reclaimers saw, and no
//     API misuse was counted.
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "atomic_reserve.h"
#include "backend.h"
#include "budget.h"
#include "control.h"
#include "counters.h"
#include "engine.h"
#include "heap_stats.h"
#include "reclaim.h"
#include "region.h"
#include "report.h"
#include "scope.h"
#include "lifecycle.h"
#include "stats_json.h"
#include "thread_state.h"
#include "stress_support.h"

namespace as = allocscope;

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
constexpr int kSlots = 24;
constexpr int kCache = 8;
constexpr size_t kCacheMax = 64 * kKiB;
constexpr size_t kExchangeMax = 32 * kKiB;
constexpr size_t kNofailMax = 64 * kKiB;
constexpr size_t kNofailHold = 512 * kKiB;
constexpr size_t kMaxBlock = 3 * kMiB;
constexpr size_t kKvThreshold = 64 * kKiB;
constexpr size_t kKvDirect = 1 * kMiB;

void *request(size_t size, as::Flags call, size_t align = 0, void *old = nullptr) {
  as::Request r("engine_stress", size, __builtin_return_address(0));
  r.align = align;
  r.old = old;
  r.call = call;
  return as::allocate(r);
}

// Did the atomic reserve (nowait_reserve) serve this jemalloc block?
bool from_atomic_reserve(void *p) {
  unsigned arena;
  size_t len = sizeof arena;
  return je_mallctl("arenas.lookup", &arena, &len, &p, sizeof p) == 0 &&
         arena == as::atomic_reserve::arena() && arena != 0;
}

int g_threads = 8;
long g_ops = 20000;
uint64_t g_seed = 1;
size_t g_budget = 0;
size_t g_limit = 0;
std::atomic<void *> *g_exchange;
int g_exchange_slots;
std::atomic<bool> g_workers_done{false};
std::atomic<long long> g_nofail_ok{0}, g_failures{0}, g_regions{0}, g_reclaim_calls{0},
    g_readds{0}, g_scopes{0}, g_configs{0}, g_realloc_steps{0}, g_reserves{0};

struct Slot {
  void *p;
  size_t size;
  size_t usable;
  uint64_t seed;
  size_t align;  // a sized release must name the alignment the block was allocated with
  bool region;
};

struct Worker {
  int index = 0;
  Rng rng{1};
  Slot slots[kSlots] = {};
  size_t held = 0;
  std::atomic<void *> cache[kCache] = {};
  int reclaimer_id = 0;
  long ops = 0;

  void run();
  void segment(int depth, long stop_at);
  void op();
  void free_slot(int i);
  void before_nofail();
  void alloc_op();
  void realloc_op();
  void exchange_op();
  void cache_op();
  void nofail_op();
  void kv_op();
  void reserve_op();
  as::Flags random_call();
  as::Flags random_scope();
  size_t random_size();
  void store(int i, void *p, size_t size, uint64_t seed, size_t align = 0);
};

size_t reclaim_cache(void *arg, size_t wanted) {
  auto *w = static_cast<Worker *>(arg);
  g_reclaim_calls.fetch_add(1, std::memory_order_relaxed);
  size_t freed = 0;
  for (auto &c : w->cache) {
    if (freed >= wanted) break;
    void *p = c.exchange(nullptr);
    if (p == nullptr) continue;
    check_tag(p, kCacheMax, "cache");
    freed += as::usable_size(p);
    as::release(p);
  }
  return freed;
}

size_t Worker::random_size() {
  const uint64_t r = rng.below(100);
  if (r < 60) return rng.between(1, 256);
  if (r < 85) return rng.between(257, 16 * kKiB);
  if (r < 95) return rng.between(16 * kKiB, 256 * kKiB);
  return rng.between(256 * kKiB, kMaxBlock);
}

as::Flags Worker::random_call() {
  static const as::Flags kChoices[] = {
      ALLOCSCOPE_NOWAIT,    ALLOCSCOPE_NORETRY,    ALLOCSCOPE_RETRY_MAYFAIL, ALLOCSCOPE_NOWARN,
      ALLOCSCOPE_NORECLAIM, ALLOCSCOPE_MEMALLOC,   ALLOCSCOPE_NOMEMALLOC,    ALLOCSCOPE_ZERO};
  as::Flags f = 0;
  for (as::Flags c : kChoices)
    if (rng.percent(12)) f |= c;
  if (rng.percent(10)) f |= ALLOCSCOPE_NORECLAIM_CLASS(rng.below(16));
  return f;
}

as::Flags Worker::random_scope() {
  static const as::Flags kChoices[] = {
      ALLOCSCOPE_NOWAIT,    ALLOCSCOPE_NORETRY, ALLOCSCOPE_RETRY_MAYFAIL, ALLOCSCOPE_NOWARN,
      ALLOCSCOPE_KV,        ALLOCSCOPE_NORECLAIM, ALLOCSCOPE_MEMALLOC,    ALLOCSCOPE_NOMEMALLOC};
  as::Flags f = 0;
  for (as::Flags c : kChoices)
    if (rng.percent(14)) f |= c;
  if (rng.percent(20)) f |= ALLOCSCOPE_NORECLAIM_CLASS(rng.below(16));
  return f;  // NOFAIL scopes: nofail_op() only (a NOFAIL scope on big requests could wait forever)
}

void Worker::store(int i, void *p, size_t size, uint64_t seed, size_t align) {
  Slot &s = slots[i];
  s.align = align;
  s.p = p;
  s.size = size;
  s.usable = as::usable_size(p);
  CHECK(s.usable >= size, "usable_size %zu < %zu", s.usable, size);
  s.seed = seed;
  s.region = as::region::contains(p) && as::region::usable_size(p) != 0;
  if (s.region) g_regions.fetch_add(1, std::memory_order_relaxed);
  held += s.usable;
}

void Worker::free_slot(int i) {
  Slot &s = slots[i];
  if (s.p == nullptr) return;
  CHECK(check(s.p, 0, s.size, s.seed), "thread %d: block %p (%zu bytes) damaged", index, s.p,
        s.size);
  CHECK(as::usable_size(s.p) == s.usable, "thread %d: usable size of %p changed", index, s.p);
  if (!s.region && rng.percent(30))
    as::release_sized(s.p, s.size, s.align != 0 ? MALLOCX_ALIGN(s.align) : 0);
  else as::release(s.p);
  held -= s.usable;
  s = Slot{};
}

void Worker::before_nofail() {
  for (int i = 0; i < kSlots && held > kNofailHold; ++i) free_slot(i);
  for (auto &c : cache) {
    if (void *p = c.exchange(nullptr)) {
      check_tag(p, kCacheMax, "cache");
      as::release(p);
    }
  }
}

void Worker::alloc_op() {
  const int i = static_cast<int>(rng.below(kSlots));
  if (slots[i].p != nullptr) return free_slot(i);
  const size_t size = random_size();
  const as::Flags call = random_call();
  const size_t align = rng.percent(15) ? size_t{1} << rng.between(3, 12) : 0;
  void *p = request(size, call, align);
  if (p == nullptr) {
    CHECK(errno == ENOMEM, "allocate failed with errno %d", errno);
    g_failures.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (align != 0) CHECK(reinterpret_cast<uintptr_t>(p) % align == 0, "%p not %zu-aligned", p, align);
  if (call & ALLOCSCOPE_ZERO) CHECK(all_zero(p, size), "ZERO request not zeroed (%zu bytes)", size);
  const uint64_t seed = rng.next();
  store(i, p, size, seed, align);
  fill(p, 0, size, seed);
}

void Worker::realloc_op() {
  const int i = static_cast<int>(rng.below(kSlots));
  Slot &s = slots[i];
  if (s.p == nullptr) return alloc_op();
  const uint64_t r = rng.below(10);
  size_t size;
  if (r < 4) size = s.size + rng.between(1, s.size * 2 + 64);
  else if (r < 7) size = rng.between(1, s.size);
  else if (r < 8) size = rng.between(kKvDirect, kMaxBlock);
  else if (r < 9) size = rng.between(1, kKvThreshold - 1);
  else size = rng.between(kKvThreshold, kKvDirect);
  if (size > kMaxBlock) size = kMaxBlock;
  const as::Flags call = (random_call() & ~ALLOCSCOPE_ZERO) | (rng.percent(30) ? ALLOCSCOPE_KV : 0);
  const bool was_region = s.region;
  void *q = request(size, call, 0, s.p);
  g_realloc_steps.fetch_add(1, std::memory_order_relaxed);
  if (q == nullptr) {
    CHECK(errno == ENOMEM, "realloc failed with errno %d", errno);
    CHECK(check(s.p, 0, s.size, s.seed), "thread %d: block damaged by a failed realloc", index);
    g_failures.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const size_t kept = size < s.size ? size : s.size;
  CHECK(check(q, 0, kept, s.seed), "thread %d: realloc lost the contents", index);
  const uint64_t seed = s.seed;
  const size_t old = s.size;
  held -= s.usable;
  s = Slot{};
  store(i, q, size, seed);
  if (was_region && size >= kKvThreshold) CHECK(slots[i].region, "region left the region window");
  if (size < kKvThreshold) CHECK(!slots[i].region, "%zu bytes in a region", size);
  if (size > old) fill(q, old, size, seed);
}

void Worker::exchange_op() {
  std::atomic<void *> &x = g_exchange[rng.below(g_exchange_slots)];
  if (void *p = x.exchange(nullptr)) {
    check_tag(p, kCacheMax, "exchange");
    as::release(p);
    return;
  }
  const size_t size = rng.between(sizeof(Header), kExchangeMax);
  void *q = request(size, ALLOCSCOPE_NOWARN | (rng.percent(50) ? ALLOCSCOPE_NOWAIT : 0));
  if (q == nullptr) {
    g_failures.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  tag(q, size, rng.next());
  void *expected = nullptr;
  if (!x.compare_exchange_strong(expected, q)) as::release(q);
}

void Worker::cache_op() {
  if (rng.percent(5)) {  // re-register: races with passes on other threads running it
    CHECK(as::reclaim::remove(reclaimer_id) == 0, "reclaim::remove");
    reclaimer_id = as::reclaim::add("engine_stress", static_cast<unsigned>(rng.below(16)),
                                    reclaim_cache, this);
    CHECK(reclaimer_id > 0, "reclaim::add: %d", reclaimer_id);
    g_readds.fetch_add(1, std::memory_order_relaxed);
  }
  for (auto &c : cache) {
    if (c.load() != nullptr || !rng.percent(50)) continue;
    const size_t size = rng.between(4 * kKiB, kCacheMax);
    void *p = request(size, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
    if (p == nullptr) {
      g_failures.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    tag(p, size, rng.next());
    void *expected = nullptr;
    if (!c.compare_exchange_strong(expected, p)) as::release(p);
  }
}

void Worker::nofail_op() {
  before_nofail();
  const int i = static_cast<int>(rng.below(kSlots));
  if (slots[i].p != nullptr) free_slot(i);
  const size_t size = rng.between(1, kNofailMax);
  void *p;
  if (rng.percent(30) && !(as::t_state.scope.flags & ALLOCSCOPE_NOWAIT)) {
    const allocscope_cookie_t cookie = as::scope::save(ALLOCSCOPE_NOFAIL, nullptr);
    p = request(size, 0);
    as::scope::restore(cookie);
  } else {
    // Call-site NOFAIL in a NOWAIT scope is a conflict: nofail_in_nowait:wait, NOFAIL wins.
    p = request(size, ALLOCSCOPE_NOFAIL | (random_call() & ~ALLOCSCOPE_ZERO));
  }
  CHECK(p != nullptr, "thread %d: NOFAIL request of %zu bytes failed", index, size);
  g_nofail_ok.fetch_add(1, std::memory_order_relaxed);
  const uint64_t seed = rng.next();
  store(i, p, size, seed);
  fill(p, 0, size, seed);
}

void Worker::kv_op() {
  const int i = static_cast<int>(rng.below(kSlots));
  if (slots[i].p != nullptr) free_slot(i);
  const size_t size = rng.percent(40) ? rng.between(kKvDirect, kMaxBlock)
                                      : rng.between(kKvThreshold, kKvDirect - 1);
  const as::Flags call = ALLOCSCOPE_KV | random_call();
  void *p = request(size, call);
  if (p == nullptr) {
    g_failures.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (call & ALLOCSCOPE_ZERO) CHECK(all_zero(p, size), "KV ZERO request not zeroed");
  const uint64_t seed = rng.next();
  store(i, p, size, seed);
  // kv_direct sends the size to a region, unless the atomic reserve served it: a NOWAIT
  // allocation under nowait_reserve makes no system call, so it never makes a region.
  if (size >= kKvDirect && !slots[i].region)
    CHECK(from_atomic_reserve(p), "KV request of %zu bytes (call %#x) is not a region", size,
          static_cast<unsigned>(call));
  fill(p, 0, size, seed);
}

// A reserve, allocations within it (which must not fail, whatever the other threads do
// to the budget), then its release. The blocks outlive it in the slots.
void Worker::reserve_op() {
  const size_t bytes = rng.between(4 * kKiB, 256 * kKiB);
  if (as::make_reserve(bytes) != 0) {
    g_failures.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const allocscope_cookie_t cookie = as::scope::save(ALLOCSCOPE_RESERVE, nullptr);
  // Four blocks of at most bytes/8: with size-class rounding and a large block's extra
  // page they stay within the reserve.
  for (int k = 0; k < 4; ++k) {
    const int i = static_cast<int>(rng.below(kSlots));
    if (slots[i].p != nullptr) free_slot(i);
    const size_t size = rng.between(1, bytes / 8);
    void *p = request(size, random_call() & ~ALLOCSCOPE_NOWAIT);
    CHECK(p != nullptr, "thread %d: RESERVE request of %zu bytes in a reserve of %zu failed",
          index, size, bytes);
    const uint64_t seed = rng.next();
    store(i, p, size, seed);
    fill(p, 0, size, seed);
  }
  as::scope::restore(cookie);
  CHECK(as::reserve::release(as::t_state) < bytes, "the reserve was not used");
  g_reserves.fetch_add(1, std::memory_order_relaxed);
}

void Worker::op() {
  const uint64_t r = rng.below(100);
  if (r < 45) alloc_op();
  else if (r < 60) realloc_op();
  else if (r < 70) exchange_op();
  else if (r < 75) cache_op();
  else if (r < 78) nofail_op();
  else if (r < 82) reserve_op();
  else kv_op();
  ++ops;
}

void Worker::segment(int depth, long stop_at) {
  const long count = static_cast<long>(rng.between(1, 48));
  for (long k = 0; k < count && ops < stop_at; ++k) {
    if (depth < 8 && rng.percent(5)) {
      const as::Flags before = as::t_state.scope.flags;
      g_scopes.fetch_add(1, std::memory_order_relaxed);
      as::Flags flags = random_scope();
      const bool clear = rng.percent(30);
      const allocscope_cookie_t cookie =
          clear ? as::scope::clear(flags) : as::scope::save(flags, nullptr);
      CHECK(as::t_state.scope.flags == (clear ? before & ~flags : before | flags), "scope after %s",
            clear ? "clear" : "save");
      segment(depth + 1, stop_at);
      as::scope::restore(cookie);
      CHECK(as::t_state.scope.flags == before, "thread %d: scope %#x after restore, expected %#x",
            index, as::t_state.scope.flags, before);
      continue;
    }
    op();
  }
}

void Worker::run() {
  reclaimer_id = as::reclaim::add("engine_stress", static_cast<unsigned>(index % 16),
                                  reclaim_cache, this);
  CHECK(reclaimer_id > 0, "reclaim::add: %d", reclaimer_id);
  as::release(request(1, 0));  // joins the budget: frees before that would not be counted
  while (ops < g_ops) segment(0, g_ops);
  CHECK(as::t_state.scope.flags == 0, "thread %d ends with scope %#x", index, as::t_state.scope.flags);
  CHECK(as::reclaim::remove(reclaimer_id) == 0, "reclaim::remove");
  for (int i = 0; i < kSlots; ++i) free_slot(i);
  for (auto &c : cache)
    if (void *p = c.exchange(nullptr)) {
      check_tag(p, kCacheMax, "cache");
      as::release(p);
    }
  CHECK(held == 0, "thread %d holds %zu bytes after freeing all", index, held);
}

void *worker_main(void *arg) {
  static_cast<Worker *>(arg)->run();
  return nullptr;
}

// The control thread: configuration, limit moves and stats while the workers run.
void *control_main(void *) {
  Rng rng(g_seed ^ 0xC0FFEE);
  char json[16384];
  char conf[128];
  while (!g_workers_done.load()) {
    switch (rng.below(9)) {
      case 0: snprintf(conf, sizeof(conf), "warn_burst:%u", static_cast<unsigned>(rng.below(20))); break;
      case 1: snprintf(conf, sizeof(conf), "retry_max:%u", static_cast<unsigned>(rng.between(1, 4))); break;
      case 2: snprintf(conf, sizeof(conf), "emergency:%zuK", static_cast<size_t>(rng.below(1024))); break;
      case 3: snprintf(conf, sizeof(conf), "arena_limit:%zu", rng.percent(50) ? size_t{0} : g_limit / 2); break;
      case 4: {
        static const char *const kPolicies[] = {"normal", "noretry", "retry_mayfail", "nowarn",
                                                "noretry|nowarn", "noreclaim"};
        snprintf(conf, sizeof(conf), "policy:%s", kPolicies[rng.below(6)]);
        break;
      }
      case 5: snprintf(conf, sizeof(conf), "log_file:/dev/null,warn:%s", rng.percent(80) ? "true" : "false"); break;
      case 6: snprintf(conf, sizeof(conf), "stall_warn_ms:%u", static_cast<unsigned>(rng.between(100, 5000))); break;
      case 7: snprintf(conf, sizeof(conf), "nowait_reserve:%zuK", static_cast<size_t>(rng.below(4)) * 512); break;
      default: snprintf(conf, sizeof(conf), "nofail_in_nowait:wait"); break;
    }
    CHECK(as::apply_config(conf, "engine_stress") == 0, "apply_config(\"%s\") refused", conf);
    g_configs.fetch_add(1, std::memory_order_relaxed);
    if (rng.percent(30)) as::budget::set_limit(g_limit + rng.below(g_budget));
    const int n = as::stats_json(json, sizeof(json));
    CHECK(n > 0 && n < static_cast<int>(sizeof(json)), "stats_json returned %d", n);
    (void)as::budget::charged();
    timespec ts{0, 2000000};
    nanosleep(&ts, nullptr);
  }
  as::budget::set_limit(g_limit);
  CHECK(as::apply_config("policy:normal,arena_limit:0,warn:true", "engine_stress") == 0, "reset");
  return nullptr;
}

long long json_number(const char *json, const char *key) {
  const char *at = strstr(json, key);
  CHECK(at != nullptr, "no %s in the stats", key);
  return atoll(at + strlen(key));
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: engine_stress THREADS(2-64) OPS [SEED]\n");
    return 2;
  }
  g_threads = atoi(argv[1]);
  g_ops = atol(argv[2]);
  if (argc > 3) g_seed = strtoull(argv[3], nullptr, 0);
  if (g_threads < 2 || g_threads > 62 || g_ops < 10) {  // 62: two reclaimer slots to spare
    fprintf(stderr, "engine_stress: THREADS must be 2..62, OPS >= 10\n");
    return 2;
  }
  je_free(je_malloc(1));  // as the preload's constructor: jemalloc first
  as::lifecycle::start();
  CHECK(as::apply_config("kv_threshold:64K,kv_direct:1M,emergency:1M,retry_max:3,"
                         "stall_warn_ms:5000,warn_burst:10,nofail_in_nowait:wait,"
                         "nofail_overdraw_ms:0,strict:false,log_file:/dev/null",
                         "engine_stress") == 0,
        "the configuration was refused");

  const size_t T = static_cast<size_t>(g_threads);
  g_budget = T * 3 * kMiB / 2 + 8 * kMiB;
  CHECK(g_budget > T * (kNofailHold + kNofailMax + 192 * kKiB) + 2 * T * kExchangeMax + 2 * kMiB,
        "budget too small for NOFAIL");
  g_exchange_slots = 2 * g_threads;
  g_exchange = new std::atomic<void *>[g_exchange_slots];
  for (int i = 0; i < g_exchange_slots; ++i) g_exchange[i].store(nullptr);
  Worker *workers = new Worker[g_threads];

  je_mallctl("thread.tcache.flush", nullptr, nullptr, nullptr, 0);
  as::HeapTotals heap0;
  CHECK(as::read_heap_totals(&heap0), "read_heap_totals");
  g_limit = as::budget::charged() + g_budget;
  as::budget::set_limit(g_limit);
  const size_t charged0 = as::budget::charged();
  const long long reclaimer_calls0 = static_cast<long long>(as::stats::g_counters.reclaimer_calls.load());
  const long long misuse0 = static_cast<long long>(as::stats::g_counters.misuse.load());

  const uint64_t t0 = now_ns();
  pthread_t control;
  CHECK(pthread_create(&control, nullptr, control_main, nullptr) == 0, "pthread_create");
  for (int i = 0; i < g_threads; ++i) {
    workers[i].index = i;
    workers[i].rng = Rng(g_seed * 1000003u + static_cast<uint64_t>(i));
  }
  pthread_t *threads = new pthread_t[g_threads];
  for (int i = 0; i < g_threads; ++i)
    CHECK(pthread_create(&threads[i], nullptr, worker_main, &workers[i]) == 0, "pthread_create");
  for (int i = 0; i < g_threads; ++i) pthread_join(threads[i], nullptr);
  g_workers_done.store(true);
  pthread_join(control, nullptr);
  const double seconds = (now_ns() - t0) / 1e9;

  for (int i = 0; i < g_exchange_slots; ++i)
    if (void *p = g_exchange[i].exchange(nullptr)) {
      check_tag(p, kCacheMax, "exchange");
      // Main has not allocated under this limit, so its frees would not be counted:
      // a request joins it to the budget first.
      as::release(request(1, 0));
      as::release(p);
    }

  const size_t charged1 = as::budget::charged();
  je_mallctl("thread.tcache.flush", nullptr, nullptr, nullptr, 0);
  as::HeapTotals heap1;
  CHECK(as::read_heap_totals(&heap1), "read_heap_totals");
  const as::region::Stats regions = as::region::stats();
  char json[16384];
  CHECK(as::stats_json(json, sizeof(json)) > 0, "stats_json");

  printf("engine_stress: %d threads x %ld operations in %.2f s; %lld failures, %lld NOFAIL "
         "successes, %lld regions, %lld realloc steps, %lld scopes, %lld reclaimer calls, %lld "
         "re-registrations, %lld configurations, %lld reserves; nofail waits %lld\n",
         g_threads, g_ops, seconds, g_failures.load(), g_nofail_ok.load(), g_regions.load(),
         g_realloc_steps.load(), g_scopes.load(), g_reclaim_calls.load(), g_readds.load(),
         g_configs.load(), g_reserves.load(), json_number(strstr(json, "\"nofail\":{"), "\"waits\":"));
  // Exact unless a refill about to fail resynchronised the count with jemalloc's total
  // (budget.h), which may only lower it, and never below what is really live: jemalloc's
  // allocated bytes minus its internal ones (every thread cache is flushed) plus regions.
  size_t internal = 0, len = sizeof(internal);
  CHECK(je_mallctl("stats.arenas.4096.internal", &internal, &len, nullptr, 0) == 0, "internal");
  const size_t live = heap1.allocated - internal + regions.bytes;
  printf("engine_stress: charged %zu at the end, %zu at the start (%+lld), really live %zu\n",
         charged1, charged0, static_cast<long long>(charged1) - static_cast<long long>(charged0),
         live);
  CHECK(charged1 <= charged0, "charged %zu at the end, above %zu at the start", charged1, charged0);
  CHECK(charged1 >= live, "charged %zu is below what is live (%zu): the budget lost %zu bytes",
        charged1, live, live - charged1);
  CHECK(regions.regions == 0 && regions.bytes == 0, "%zu regions (%zu bytes) left", regions.regions,
        regions.bytes);
  CHECK(heap1.nmalloc - heap1.ndalloc == heap0.nmalloc - heap0.ndalloc,
        "heap nmalloc-ndalloc %lld at the end, %lld at the start",
        static_cast<long long>(heap1.nmalloc - heap1.ndalloc),
        static_cast<long long>(heap0.nmalloc - heap0.ndalloc));
  CHECK(static_cast<long long>(as::stats::g_counters.reclaimer_calls.load()) - reclaimer_calls0 ==
            g_reclaim_calls.load(),
        "reclaimer_calls: stats %lld, reclaimers ran %lld",
        static_cast<long long>(as::stats::g_counters.reclaimer_calls.load()) - reclaimer_calls0,
        g_reclaim_calls.load());
  CHECK(static_cast<long long>(as::stats::g_counters.misuse.load()) == misuse0, "misuse counted");
  as::budget::set_limit(0);
  delete[] threads;
  delete[] workers;
  delete[] g_exchange;
  printf("engine_stress: ok\n");
  return 0;
}
