// stats.h: allocscope's counters, and its statistics as one JSON object.
//
// Counters count what the engine did, so they cover the allocations that went through
// it: all of them while a limit, fault injection or an engaged scope is in force, and
// otherwise those that failed in jemalloc first. They are relaxed atomics, touched only
// off the fast path.
//
// The JSON object is what allocscope_stats_json() returns and stats_print/stats_file
// write at exit:
//   {"allocscope":{"version":"…","pid":N,"engaged":"limit|kv|…",  (thread_state.h's bits)
//     "budget":{"limit":N,"charged":N,"emergency":N,"near":N},  near: times the limit
//                                  came near (budget.h: every allocation is then checked)
//     "policies":{"normal":{…},"noretry":{…},"retry_mayfail":{…},"nofail":{…},
//                 "nowait":{…}},   each {"attempts","failures","retries","reclaim_passes",
//                                  "reclaimed_bytes","waits","wait_ms","stalls",
//                                  "overdraws"}
//     "conflicts":N,"nofail_demotions":N,"misuse":N,"reports":N,"reports_suppressed":N,
//     "reclaimer_calls":N,
//     "faults_injected":N,
//     "pools":{"live":N,"held":N,"from_reserve":N,"waits":N,"failures":N},
//     "reserves":{"made":N,"released":N,"exhausted":N,"from_premapped":N,"unused_bytes":N,
//                 "max_high_water":N,"premapped":N,"premapped_available":N,
//                 "last":[{"size":N,"high_water":N},…]},   the last 8 released, newest first
//     "nowait_reserve":{"size":N,"available":N,"handed_out":N,"refills":N},
//     "kv":{"regions":N,"region_bytes":N,"fallbacks":N,"direct":N,"remap_moves":N,
//           "grown_in_place":N,"arena_instead":N},
//     "heap":{"allocated":N,"active":N,"resident":N,"mapped":N,"retained":N,
//             "metadata":N,"dirty":N,"nmalloc":N,"ndalloc":N}}}
// "heap" is jemalloc's view of the whole process (see heap_stats.h). Formatting never
// allocates, so it works from exit handlers and on failing allocation paths.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "resolve.h"

namespace allocscope {
namespace stats {

struct PolicyCounters {
  std::atomic<uint64_t> attempts;
  std::atomic<uint64_t> failures;
  std::atomic<uint64_t> retries;
  std::atomic<uint64_t> reclaim_passes;
  std::atomic<uint64_t> reclaimed_bytes;
  std::atomic<uint64_t> waits;
  std::atomic<uint64_t> wait_ns;
  std::atomic<uint64_t> stalls;
  std::atomic<uint64_t> overdraws;
};

struct Counters {
  PolicyCounters policy[5];  // indexed by Contract
  std::atomic<uint64_t> conflicts;
  std::atomic<uint64_t> nofail_demotions;
  std::atomic<uint64_t> misuse;  // out-of-order restores and other API misuse
  std::atomic<uint64_t> reports;
  std::atomic<uint64_t> reports_suppressed;
  std::atomic<uint64_t> reclaimer_calls;
  std::atomic<uint64_t> kv_fallbacks;  // kv arena attempts that failed, served by a region
  std::atomic<uint64_t> kv_direct;     // kv allocations sent straight to a region
  std::atomic<uint64_t> kv_arena_instead;  // no region could be made: the arena served it
  std::atomic<uint64_t> limit_near;        // kEngagedLimitNear was set (budget.h)
};

extern Counters g_counters;

inline PolicyCounters &of(Contract c) { return g_counters.policy[static_cast<int>(c)]; }
inline void bump(std::atomic<uint64_t> &counter, uint64_t by = 1) {
  counter.fetch_add(by, std::memory_order_relaxed);
}
inline void count_reclaimer_call(size_t) { bump(g_counters.reclaimer_calls); }

}  // namespace stats

// snprintf semantics: writes at most len bytes including the NUL, returns the length
// the whole object needs (so a caller can size its buffer), or -1 on an error.
int stats_json(char *buf, size_t len);

// At exit: prints the stats on the report stream if stats_print, writes stats_file if set.
void write_exit_stats();

}  // namespace allocscope
