// atomic_reserve.cc: see atomic_reserve.h.
#include "atomic_reserve.h"

#include <stdio.h>

#include <atomic>

#include "counters.h"
#include "gate.h"
#include "premapped_arena.h"
#include "sys.h"

namespace allocscope {
namespace atomic_reserve {

namespace {

PremappedArena g_arena{LockRank::kAtomicReserveArena, gate::kRefill};
std::atomic<size_t> g_size{0};
std::atomic<bool> g_refilling{false};
// After a refill a NOWAIT allocation made has failed, NOWAIT allocations do not try again
// before this time (CLOCK_MONOTONIC ns): a refused mmap is not retried on every one.
std::atomic<uint64_t> g_nowait_retry_at{0};
constexpr uint64_t kNowaitRetryNs = 10 * sys::kNsPerMs;

size_t keep() { return g_size.load(); }

// The most a refill maps for one request: N, or what the arena has handed out so far.
size_t bound() {
  const size_t handed_out = g_arena.stats().handed_out, n = g_size.load();
  return handed_out > n ? handed_out : n;
}

// Makes at least max(N, what jemalloc was refused, `also`) available, unless another
// refill is running. `wait`: false for a NOWAIT allocation, which gives up rather than
// wait for a configuration holding the arena.
bool refill_to(size_t also, bool wait) {
  if (g_refilling.exchange(true, std::memory_order_acquire)) return false;
  // Cleared first: a NOWAIT allocation that drains the arena meanwhile sets it again.
  gate::change(0, gate::kRefill);
  bool ok = true;
  size_t target = g_size.load();
  if (target != 0) {
    const size_t wanted = g_arena.wanted(target);
    if (wanted > target) target = wanted;
    if (also > target) target = also;
    // If the system refuses, the next NOWAIT allocation the arena cannot serve sets
    // gate::kRefill again (premapped_arena.cc): refills are retried at that pace.
    if (g_arena.available() < target) {
      ok = wait ? g_arena.provide(target) : g_arena.try_provide(target);
      if (ok) stats::bump(stats::g_counters.atomic_reserve_refills);
    }
  }
  g_refilling.store(false, std::memory_order_release);
  return ok;
}

// A refill a NOWAIT allocation makes: never waits, and not tried again by NOWAIT
// allocations for a while after the system refused one.
bool nowait_refill(size_t also) {
  const uint64_t retry_at = g_nowait_retry_at.load(std::memory_order_relaxed);
  if (retry_at != 0 && sys::now_ns() < retry_at) return false;
  const bool ok = refill_to(also, false);
  if (!ok && g_arena.last_failure() != PremappedArena::Failure::kNone)
    g_nowait_retry_at.store(sys::now_ns() + kNowaitRetryNs, std::memory_order_relaxed);
  return ok;
}

}  // namespace

bool configure(size_t bytes) {
  g_size.store(bytes);
  g_arena.set_low_water(bytes / 2);
  g_arena.set_min_water(bytes / 4);
  g_nowait_retry_at.store(0);
  bool ok = true;
  if (bytes == 0) {
    g_arena.trim(keep);
    gate::change(0, gate::kRefill);
  } else if (!g_arena.provide(bytes)) {
    g_size.store(0);
    ok = false;
  } else {
    g_arena.trim(keep);  // a smaller N than before
  }
  gate::publish_atomic_reserve(g_size.load() != 0);
  return ok;
}

size_t size() { return g_size.load(std::memory_order_relaxed); }
unsigned arena() { return g_arena.arena(); }

int mallocx_flags() {
  return g_size.load(std::memory_order_relaxed) != 0 ? g_arena.mallocx_flags() : 0;
}

void refill() { refill_to(0, true); }

void before_nowait() {
  if (!g_arena.short_of_memory() || g_size.load(std::memory_order_relaxed) == 0) return;
  nowait_refill(0);
}

bool refill_for_refused() {
  const size_t n = g_size.load(std::memory_order_relaxed);
  if (n == 0) return false;
  const size_t wanted = g_arena.wanted(n);
  return wanted > g_arena.available() && nowait_refill(wanted) &&
         g_arena.available() >= wanted;
}

int describe_failure(char *buf, size_t len, size_t size) {
  char refill[192];
  if (g_arena.describe(refill, sizeof(refill)) <= 0) refill[0] = '\0';
  return snprintf(buf, len,
                  "the atomic reserve (nowait_reserve:%zu) could not serve it (%zu bytes "
                  "available, %zu handed out)%s%s%s",
                  g_size.load(), g_arena.available(), g_arena.stats().handed_out,
                  size > bound() ? "; larger than the reserve and all it holds" : "",
                  refill[0] != '\0' ? "; its last refill failed: " : "", refill);
}

Stats stats() {
  const PremappedArena::Stats arena = g_arena.stats();
  return Stats{g_size.load(), arena.available, arena.handed_out,
               stats::get(stats::g_counters.atomic_reserve_refills)};
}

void prefork() { g_arena.prefork(); }
void postfork_parent() { g_arena.postfork(); }
void postfork_child() {
  g_refilling.store(false);  // a thread that was about to refill does not exist here
  g_arena.postfork();
}

}  // namespace atomic_reserve
}  // namespace allocscope
