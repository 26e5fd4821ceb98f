// counters.h: what allocscope counts, in one struct: a leaf every module bumps and
// stats_json.cc reads.
//
// Counters count what the engine did, so they cover the allocations that went through
// it: all of them while a limit, fault injection or an engaged scope is in force, and
// otherwise those that failed in jemalloc first. They are relaxed atomics, touched only
// off the fast path. When you add one, add it to stats_json.cc's output and its schema
// comment in stats_json.h.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "resolve.h"

namespace allocscope {
namespace stats {

using Counter = std::atomic<uint64_t>;

struct PolicyCounters {
  Counter attempts;
  Counter failures;
  Counter retries;
  Counter reclaim_passes;
  Counter reclaimed_bytes;
  Counter waits;
  Counter wait_ns;
  Counter stalls;
  Counter overdraws;
};

struct Counters {
  PolicyCounters policy[5];  // indexed by Contract
  Counter conflicts;
  Counter nofail_demotions;
  Counter misuse;  // out-of-order restores and other API misuse
  Counter reports;
  Counter reports_suppressed;
  Counter reports_dropped;  // not written: destination full, closed, replaced or refused
  Counter reclaimer_calls;
  Counter faults_injected;
  Counter limit_near;  // gate::kLimitNear was set (budget.h)
  struct {
    Counter fallbacks;       // kv arena attempts that failed, served by a region
    Counter to_region;       // kv allocations sent straight to a region (kv_direct)
    Counter arena_instead;   // no region could be made: the arena served it
  } kv;
  struct {
    Counter live;            // pools created and not destroyed
    Counter held;            // elements held back, all pools together
    Counter from_held;       // allocations served from a held-back set
    Counter waits;           // timed waits for an element to come back
    Counter failures;        // NOWAIT allocations with nothing held back
  } pools;
  struct {
    Counter made, released, exhausted, from_premapped, max_high_water;
    Counter last_size[8], last_high_water[8];  // the last released reserves (a ring)
    std::atomic<unsigned> last_count;
  } reserves;
  Counter atomic_reserve_refills;
  // When the preload started (sys::now_ns()): the stats give times from it (the peak's).
  Counter started_ns;
};

extern Counters g_counters;

inline PolicyCounters &of(Contract c) { return g_counters.policy[static_cast<int>(c)]; }
inline void bump(Counter &counter, uint64_t by = 1) {
  counter.fetch_add(by, std::memory_order_relaxed);
}
inline unsigned long long get(const Counter &counter) {
  return static_cast<unsigned long long>(counter.load(std::memory_order_relaxed));
}

}  // namespace stats
}  // namespace allocscope
