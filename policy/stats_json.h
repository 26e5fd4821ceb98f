// stats_json.h: allocscope's statistics as one JSON object, written from the counters
// (counters.h) and the state of every module. It sits at the top: it reads everything.
//
// The object is what allocscope_stats_json() returns and stats_print/stats_file write at
// exit:
//   {"allocscope":{"version":"…","pid":N,"engaged":"limit|kv|…",  (gate.h's bits)
//     "budget":{"limit":N,"charged":N,"emergency":N,"near":N,  near: times the limit
//                                  came near (budget.h: every allocation is then checked)
//               "tree":{"limit":N,"charged":N,"members":N,"grant":N}},  in a tree budget
//                                  (limit_scope:tree): the tree's limit, the sum of its
//                                  members' grants, its members, and this process's grant;
//                                  "limit" above is the tree's, "charged" this process's
//     "policies":{"normal":{…},"noretry":{…},"retry_mayfail":{…},"nofail":{…},
//                 "nowait":{…}},   each {"attempts","failures","retries","reclaim_passes",
//                                  "reclaimed_bytes","waits","wait_ms","stalls",
//                                  "overdraws"}
//     "conflicts":N,"nofail_demotions":N,"misuse":N,"reports":N,"reports_suppressed":N,
//     "reports_dropped":N,   reports that could not be written (report.h)
//     "reclaimer_calls":N,
//     "faults_injected":N,
//     "pools":{"live":N,"held":N,"from_reserve":N,"waits":N,"failures":N},
//                                  from_reserve: served from a held-back set
//     "reserves":{"made":N,"released":N,"exhausted":N,"from_premapped":N,"unused_bytes":N,
//                 "max_high_water":N,"premapped":N,"premapped_available":N,
//                 "last":[{"size":N,"high_water":N},…]},   the last 8 released, newest first
//     "nowait_reserve":{"size":N,"available":N,"handed_out":N,"refills":N},
//     "kv":{"regions":N,"region_bytes":N,"fallbacks":N,"direct":N,"remap_moves":N,
//           "grown_in_place":N,"arena_instead":N},   direct: sent straight to a region
//     "heap":{"allocated":N,"active":N,"resident":N,"mapped":N,"retained":N,
//             "metadata":N,"dirty":N,"nmalloc":N,"ndalloc":N}}}
// "heap" is jemalloc's view of the whole process (see heap_stats.h). The field names are
// kept as users' scripts know them. Formatting never allocates, so it works from exit
// handlers and on failing allocation paths.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace allocscope {

// snprintf semantics: writes at most len bytes including the NUL, returns the length
// the whole object needs (so a caller can size its buffer), or -1 on an error.
int stats_json(char *buf, size_t len);

// At exit: writes fault.record, prints the stats on the report stream if stats_print,
// writes stats_file if set.
void write_exit_stats();

}  // namespace allocscope
