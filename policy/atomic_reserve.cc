// atomic_reserve.cc: see atomic_reserve.h.
#include "atomic_reserve.h"

#include <atomic>

#include "premapped_arena.h"
#include "thread_state.h"

namespace allocscope {
namespace atomic_reserve {

namespace {

PremappedArena g_arena{kEngagedRefill};
std::atomic<size_t> g_size{0};
std::atomic<uint64_t> g_refills{0};
std::atomic<bool> g_refilling{false};

size_t keep() { return g_size.load(); }

}  // namespace

bool configure(size_t bytes) {
  g_size.store(bytes);
  g_arena.set_low_water(bytes / 2);
  if (bytes == 0) {
    g_arena.trim(keep);
    change_engaged(0, kEngagedRefill);
    return true;
  }
  if (!g_arena.provide(bytes)) {
    g_size.store(0);
    return false;
  }
  g_arena.trim(keep);  // a smaller N than before
  return true;
}

size_t size() { return g_size.load(std::memory_order_relaxed); }
unsigned arena() { return g_arena.arena(); }

int mallocx_flags() {
  return g_size.load(std::memory_order_relaxed) != 0 ? g_arena.mallocx_flags() : 0;
}

void refill() {
  if (g_refilling.exchange(true, std::memory_order_acquire)) return;
  // Cleared first: a NOWAIT allocation that drains the arena meanwhile sets it again.
  change_engaged(0, kEngagedRefill);
  const size_t target = g_size.load();
  if (target != 0) {
    // If the system refuses, the next NOWAIT allocation the arena cannot serve sets
    // kEngagedRefill again (premapped_arena.cc): refills are retried at that pace.
    if (g_arena.stats().available < target && g_arena.provide(target))
      g_refills.fetch_add(1, std::memory_order_relaxed);
  }
  g_refilling.store(false, std::memory_order_release);
}

Stats stats() {
  const PremappedArena::Stats arena = g_arena.stats();
  return Stats{g_size.load(), arena.available, arena.handed_out, g_refills.load()};
}

void prefork() { g_arena.prefork(); }
void postfork() { g_arena.postfork(); }

}  // namespace atomic_reserve
}  // namespace allocscope
