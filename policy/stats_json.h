// stats_json.h: allocscope's statistics as one JSON object, written from the counters
// (counters.h) and the state of every module. It sits at the top: it reads everything.
//
// The object is what allocscope_stats_json() returns and stats_print/stats_file write at
// exit:
//   {"allocscope":{"version":"…","pid":N,"uptime_ms":N,  (ms since the preload started)
//     "signal":"SIGTERM",          only when written by the exit-signal handler (below)
//     "engaged":"limit|kv|…",      (gate.h's bits)
//     "budget":{"limit":N,"charged":N,"peak":N,"peak_at_ms":N,"emergency":N,"near":N,
//                                  peak: the highest charge seen (budget.h: Peak), and
//                                  when (ms since start); near: times the limit came near
//                                  (budget.h: every allocation is then checked)
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
//     "failure_sites":[{"site":"module+0xoffset","failures":N,"normal":N,…},…],
//                                  the 5 call sites with the most failures, most first,
//                                  with their failures by policy (only policies with some)
//     "failure_sites_other":N,     failures at sites the 64-entry table had no room for
//     "rss":{"now":N,"peak":N},    resident memory now and at its peak (the kernel's)
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
// "heap" is jemalloc's view of the whole process (see heap_stats.h). Written by the
// exit-signal handler, the object has "signal", "charged" is the lock-free estimate, "kv"
// has its first two fields only, and "reserves", "nowait_reserve" and "heap" are left
// out: they are read through locks the interrupted code may hold. The field names are
// kept as users' scripts know them. Formatting never allocates, so it works from exit
// handlers and on failing allocation paths.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace allocscope {

// snprintf semantics: writes at most len bytes including the NUL, returns the length
// the whole object needs (so a caller can size its buffer), or -1 on an error.
// `signal`: 0, or the signal whose handler writes (async-signal-safe then).
int stats_json(char *buf, size_t len, int signal = 0);

// At exit (signal 0), or from the handler of an exit signal (exit_signals.h), once per
// process: writes fault.record (not from a handler), prints the stats on the report stream
// as stats_print says (JSON, or the summary of stats_summary.h), writes the JSON to
// stats_file if set.
void write_exit_stats(int signal = 0);

}  // namespace allocscope
