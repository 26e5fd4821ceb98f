// atomic_reserve.cc: see atomic_reserve.h.
#include "atomic_reserve.h"

#include <atomic>

#include "counters.h"
#include "gate.h"
#include "premapped_arena.h"

namespace allocscope {
namespace atomic_reserve {

namespace {

PremappedArena g_arena{LockRank::kAtomicReserveArena, gate::kRefill};
std::atomic<size_t> g_size{0};
std::atomic<bool> g_refilling{false};

size_t keep() { return g_size.load(); }

}  // namespace

bool configure(size_t bytes) {
  g_size.store(bytes);
  g_arena.set_low_water(bytes / 2);
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

void refill() {
  if (g_refilling.exchange(true, std::memory_order_acquire)) return;
  // Cleared first: a NOWAIT allocation that drains the arena meanwhile sets it again.
  gate::change(0, gate::kRefill);
  const size_t target = g_size.load();
  if (target != 0) {
    // If the system refuses, the next NOWAIT allocation the arena cannot serve sets
    // gate::kRefill again (premapped_arena.cc): refills are retried at that pace.
    if (g_arena.stats().available < target && g_arena.provide(target))
      stats::bump(stats::g_counters.atomic_reserve_refills);
  }
  g_refilling.store(false, std::memory_order_release);
}

Stats stats() {
  const PremappedArena::Stats arena = g_arena.stats();
  return Stats{g_size.load(), arena.available, arena.handed_out,
               stats::get(stats::g_counters.atomic_reserve_refills)};
}

void prefork() { g_arena.prefork(); }
void postfork_parent() { g_arena.postfork(); }
void postfork_child() { g_arena.postfork(); }

}  // namespace atomic_reserve
}  // namespace allocscope
