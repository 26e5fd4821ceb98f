// reserve.cc: see reserve.h.
#include "reserve.h"

#include <stdio.h>
#include <unistd.h>

#include "backend.h"
#include "budget.h"
#include "options.h"
#include "premapped_arena.h"
#include "report.h"
#include "counters.h"
#include "sys.h"

namespace allocscope {
namespace reserve {

namespace {

PremappedArena g_arena{LockRank::kReserveArena, 0};

// Bytes being reserved right now: provided, not yet in some thread's reserve_left.
std::atomic<uint64_t> g_pending{0};

auto &g_reserve_counters = stats::g_counters.reserves;

// jemalloc's geometry, read once: what the premapped arena may use beyond the reserves'
// bytes (a partly used slab per small size class, since one is taken whole for a single
// block, and one more base block of jemalloc metadata, 4 MiB, with up to 2 MiB skipped
// to align it), the largest small size, and the page a large block takes beyond its
// usable size (cache-oblivious placement: opt.cache_oblivious).
struct Geometry {
  size_t slack, small_max, large_pad;
};
const Geometry &geometry() {
  static Geometry g = [] {
    Geometry g{size_t{6} << 20, 0, 0};
    unsigned nbins = 0;
    size_t len = sizeof(nbins);
    je_mallctl("arenas.nbins", &nbins, &len, nullptr, 0);
    for (unsigned i = 0; i < nbins; ++i) {
      char name[64];
      size_t value = 0;
      len = sizeof(value);
      snprintf(name, sizeof(name), "arenas.bin.%u.slab_size", i);
      if (je_mallctl(name, &value, &len, nullptr, 0) == 0) g.slack += value;
      snprintf(name, sizeof(name), "arenas.bin.%u.size", i);
      if (je_mallctl(name, &value, &len, nullptr, 0) == 0 && value > g.small_max)
        g.small_max = value;
    }
    bool cache_oblivious = true;
    len = sizeof(cache_oblivious);
    je_mallctl("opt.cache_oblivious", &cache_oblivious, &len, nullptr, 0);
    g.large_pad = cache_oblivious ? sys::page_size() : 0;
    return g;
  }();
  return g;
}

size_t slack() { return geometry().slack; }

// What the premapped arena must have available: the unused part of every reserve, what
// is being reserved, and the slack. (The used part was served by jemalloc, or already
// taken from the arena.)
size_t needed() { return budget::reserves_total() + g_pending.load() + slack(); }
// What a release leaves available: that and a few MiB more, so that a thread that
// releases and reserves again in a loop does not unmap and map each time, while the pages
// of a large reserve go back to the system (not a multiple of what other reserves hold).
constexpr size_t kKeptExtra = size_t{4} << 20;
size_t kept() { return needed() + kKeptExtra; }

void report_exhausted(const ThreadState &t, size_t size, size_t cost, const char *name) {
  g_reserve_counters.exhausted.fetch_add(1, std::memory_order_relaxed);
  report("%s(%zu): the thread's reserve of %zu bytes is exhausted (%lld left, %zu needed): "
         "this and later RESERVE allocations follow the thread's policy; reserve more; "
         "thread %d",
         name, size, t.reserve.size, static_cast<long long>(t.reserve.left), cost,
         static_cast<int>(gettid()));
}

}  // namespace

bool provide(size_t bytes) {
  g_pending.fetch_add(bytes);
  if (g_arena.provide(needed())) return true;
  g_pending.fetch_sub(bytes);
  return false;
}

void unprovide(size_t bytes) {
  g_pending.fetch_sub(bytes);
  g_arena.trim(kept);
}

int describe_failure(char *buf, size_t len) {
  char why[192];
  if (g_arena.describe(why, sizeof(why)) <= 0) snprintf(why, sizeof(why), "reason unknown");
  return snprintf(buf, len, "the reserves' premapped arena could not provide it: %s", why);
}

size_t room() {
  const size_t room = g_arena.room(), used = needed();
  return room > used ? room - used : 0;
}

void grant(ThreadState &t, size_t bytes) {
  g_pending.fetch_sub(bytes);  // now in t.reserve.left
  if (t.reserve.size == 0) {
    g_reserve_counters.made.fetch_add(1, std::memory_order_relaxed);
    t.reserve.exhausted = false;
  }
  t.reserve.size += bytes;
}

void *take(ThreadState &t, size_t size, int jemalloc_flags, const char *name) {
  // No reserve, or a size the policy refuses anyway (max_size; jemalloc's own cap).
  if (t.reserve.size == 0 || size > g_config.max_size.load(std::memory_order_relaxed))
    return nullptr;
  if (size == 0) size = 1;  // as jemalloc's malloc(0); *allocx need a size
  // The usable size, and for a large block the page the premapped arena would spend.
  size_t cost = je_nallocx(size, jemalloc_flags);
  if (cost == 0) return nullptr;
  if (cost > geometry().small_max) cost += geometry().large_pad;
  if (AS_UNLIKELY(static_cast<int64_t>(cost) > t.reserve.left)) {
    if (!t.reserve.exhausted) {
      t.reserve.exhausted = true;
      report_exhausted(t, size, cost, name);
    }
    return nullptr;
  }
  // jemalloc counts the block's usable size as this thread's: the sum the budget makes
  // stays the same (or drops by the pad). Budget sums on other threads read reserve_left
  // meanwhile.
  __atomic_store_n(&t.reserve.left, t.reserve.left - static_cast<int64_t>(cost),
                   __ATOMIC_RELAXED);
  void *p = jemalloc_flags == 0 ? je_malloc(size) : je_mallocx(size, jemalloc_flags);
  if (AS_LIKELY(p != nullptr)) return p;
  // The system refused jemalloc memory: the premapped arena has it.
  p = je_mallocx(size, jemalloc_flags | g_arena.mallocx_flags());
  if (p != nullptr) {
    g_reserve_counters.from_premapped.fetch_add(1, std::memory_order_relaxed);
    return p;
  }
  __atomic_store_n(&t.reserve.left, t.reserve.left + static_cast<int64_t>(cost),
                   __ATOMIC_RELAXED);
  report("%s(%zu): the reserves' premapped arena could not serve it (a bug: slack too "
         "small); falling back to the thread's policy",
         name, size);
  return nullptr;
}

size_t release(ThreadState &t) {
  if (t.reserve.size == 0) return 0;
  const size_t unused = budget::uncharge_reserve(t);
  const uint64_t used = t.reserve.size - unused;
  const unsigned slot = g_reserve_counters.last_count.fetch_add(1, std::memory_order_relaxed) % 8;
  g_reserve_counters.last_size[slot].store(t.reserve.size, std::memory_order_relaxed);
  g_reserve_counters.last_high_water[slot].store(used, std::memory_order_relaxed);
  uint64_t max = g_reserve_counters.max_high_water.load(std::memory_order_relaxed);
  while (used > max && !g_reserve_counters.max_high_water.compare_exchange_weak(max, used)) {
  }
  g_reserve_counters.released.fetch_add(1, std::memory_order_relaxed);
  t.reserve.size = 0;
  g_arena.trim(kept);
  return unused;
}

Stats stats() {
  Stats s{};
  s.made = g_reserve_counters.made.load();
  s.released = g_reserve_counters.released.load();
  s.exhausted = g_reserve_counters.exhausted.load();
  s.from_premapped = g_reserve_counters.from_premapped.load();
  s.unused_bytes = budget::reserves_total();
  s.max_high_water = g_reserve_counters.max_high_water.load();
  const unsigned count = g_reserve_counters.last_count.load();
  s.last_count = count < 8 ? count : 8;
  for (unsigned i = 0; i < s.last_count; ++i) {
    const unsigned slot = (count - 1 - i) % 8;
    s.last_size[i] = g_reserve_counters.last_size[slot].load();
    s.last_high_water[i] = g_reserve_counters.last_high_water[slot].load();
  }
  const PremappedArena::Stats arena = g_arena.stats();
  s.mapped = arena.mapped;
  s.available = arena.available;
  return s;
}

void prefork() { g_arena.prefork(); }
void postfork_parent() { g_arena.postfork(); }
void postfork_child() { g_arena.postfork(); }

}  // namespace reserve
}  // namespace allocscope
