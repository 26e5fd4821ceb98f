// stats_json.cc: see stats_json.h.
#include "stats_json.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "atomic_reserve.h"
#include "budget.h"
#include "failure_sites.h"
#include "exit_signals.h"
#include "counters.h"
#include "fault.h"
#include "gate.h"
#include "options.h"
#include "heap_stats.h"
#include "pool.h"
#include "region.h"
#include "report.h"
#include "reserve.h"
#include "stats_summary.h"
#include "sys.h"
#include "text_writer.h"
#include "tree_budget.h"
#include "version.h"

namespace allocscope {

namespace {

using Writer = TextWriter;

// The engaged bits by name (gate.h): what keeps entry points off the fast path.
void add_engaged(Writer &w) {
  const uint32_t bits = gate::bits();
  w.add("\"engaged\":\"");
  const char *sep = "";
  for (uint32_t i = 0; i < gate::kBitCount; ++i)
    if (bits & (1u << i)) {
      w.add("%s%s", sep, gate::bit_name(1u << i));
      sep = "|";
    }
  w.add("\",");
}

// Milliseconds from the preload's start to `ns` (sys::now_ns()); 0 for 0.
unsigned long long ms_since_start(uint64_t ns) {
  const uint64_t start = stats::g_counters.started_ns.load(std::memory_order_relaxed);
  return ns > start ? static_cast<unsigned long long>((ns - start) / sys::kNsPerMs) : 0;
}

// The call sites with the most failures (failure_sites.h).
void add_failure_sites(Writer &w) {
  const failure_sites::Site *top[failure_sites::kTop];
  uint64_t other;
  const int n = failure_sites::top(top, &other);
  w.add("\"failure_sites\":[");
  for (int i = 0; i < n; ++i) {
    w.add("%s{\"site\":\"%s\",\"failures\":%llu", i ? "," : "", top[i]->name,
          static_cast<unsigned long long>(failure_sites::total(*top[i])));
    for (int c = 0; c < 5; ++c)
      if (const uint64_t f = top[i]->failures[c].load(std::memory_order_relaxed))
        w.add(",\"%s\":%llu", contract_name(static_cast<Contract>(c)),
              static_cast<unsigned long long>(f));
    w.add("}");
  }
  w.add("],\"failure_sites_other\":%llu,", static_cast<unsigned long long>(other));
}

}  // namespace

int stats_json(char *buf, size_t len, int signal) {
  using stats::g_counters;
  using stats::get;
  // From a signal handler, nothing that takes a lock: the interrupted code may hold it
  // (jemalloc's ctl and arena locks, the budget's). The charge is then the lock-free
  // estimate, and the sections read through locks are left out.
  const bool in_handler = signal != 0;
  HeapTotals h;
  if (!in_handler) read_heap_totals(&h);
  Writer w{buf, len};
  w.add("{\"allocscope\":{\"version\":\"%s\",\"pid\":%d,\"uptime_ms\":%llu,", kVersion,
        static_cast<int>(getpid()), ms_since_start(sys::now_ns()));
  if (in_handler) w.add("\"signal\":\"%s\",", exit_signals::name(signal));
  add_engaged(w);
  const budget::Peak peak = budget::peak();
  w.add("\"budget\":{\"limit\":%zu,\"charged\":%zu,\"peak\":%zu,\"peak_at_ms\":%llu,"
        "\"emergency\":%zu,\"near\":%llu",
        budget::limit(), in_handler ? budget::charged_estimate() : budget::charged(),
        peak.bytes, ms_since_start(peak.at_ns), budget::emergency(), get(g_counters.limit_near));
  if (tree::active()) {
    const tree::Stats t = tree::stats();
    w.add(",\"tree\":{\"limit\":%lld,\"charged\":%lld,\"members\":%d,\"grant\":%lld}",
          static_cast<long long>(t.limit), static_cast<long long>(t.charged), t.members,
          static_cast<long long>(t.grant));
  }
  w.add("},");
  w.add("\"policies\":{");
  for (int i = 0; i < 5; ++i) {
    const stats::PolicyCounters &p = g_counters.policy[i];
    w.add("%s\"%s\":{\"attempts\":%llu,\"failures\":%llu,\"retries\":%llu,"
          "\"reclaim_passes\":%llu,\"reclaimed_bytes\":%llu,\"waits\":%llu,"
          "\"wait_ms\":%llu,\"stalls\":%llu,\"overdraws\":%llu}",
          i ? "," : "", contract_name(static_cast<Contract>(i)), get(p.attempts),
          get(p.failures), get(p.retries), get(p.reclaim_passes), get(p.reclaimed_bytes),
          get(p.waits), get(p.wait_ns) / 1000000, get(p.stalls), get(p.overdraws));
  }
  w.add("},\"conflicts\":%llu,\"nofail_demotions\":%llu,\"misuse\":%llu,\"reports\":%llu,"
        "\"reports_suppressed\":%llu,\"reports_dropped\":%llu,\"reclaimer_calls\":%llu,",
        get(g_counters.conflicts), get(g_counters.nofail_demotions), get(g_counters.misuse),
        get(g_counters.reports), get(g_counters.reports_suppressed),
        get(g_counters.reports_dropped), get(g_counters.reclaimer_calls));
  w.add("\"faults_injected\":%llu,", get(g_counters.faults_injected));
  add_failure_sites(w);
  w.add("\"rss\":{\"now\":%zu,\"peak\":%zu},", sys::resident_bytes(),
        sys::peak_resident_bytes());
  const auto &pools = g_counters.pools;
  w.add("\"pools\":{\"live\":%llu,\"held\":%llu,\"from_reserve\":%llu,\"waits\":%llu,"
        "\"failures\":%llu},",
        get(pools.live), get(pools.held), get(pools.from_held), get(pools.waits),
        get(pools.failures));
  if (in_handler) {
    // reserves (the budget's lock), nowait_reserve (the arena's) and heap (jemalloc's ctl
    // lock) are what the handler leaves out; kv is lock-free.
    const region::Stats regions = region::stats();
    w.add("\"kv\":{\"regions\":%zu,\"region_bytes\":%zu}}}", regions.regions, regions.bytes);
    if (w.failed || w.used > INT32_MAX) return -1;
    return static_cast<int>(w.used);
  }
  const reserve::Stats reserves = reserve::stats();
  w.add("\"reserves\":{\"made\":%llu,\"released\":%llu,\"exhausted\":%llu,"
        "\"from_premapped\":%llu,\"unused_bytes\":%llu,\"max_high_water\":%llu,"
        "\"premapped\":%zu,\"premapped_available\":%zu,\"last\":[",
        static_cast<unsigned long long>(reserves.made),
        static_cast<unsigned long long>(reserves.released),
        static_cast<unsigned long long>(reserves.exhausted),
        static_cast<unsigned long long>(reserves.from_premapped),
        static_cast<unsigned long long>(reserves.unused_bytes),
        static_cast<unsigned long long>(reserves.max_high_water), reserves.mapped,
        reserves.available);
  for (unsigned i = 0; i < reserves.last_count; ++i)
    w.add("%s{\"size\":%llu,\"high_water\":%llu}", i ? "," : "",
          static_cast<unsigned long long>(reserves.last_size[i]),
          static_cast<unsigned long long>(reserves.last_high_water[i]));
  const atomic_reserve::Stats nowait = atomic_reserve::stats();
  w.add("]},\"nowait_reserve\":{\"size\":%zu,\"available\":%zu,\"handed_out\":%zu,"
        "\"refills\":%llu},",
        nowait.size, nowait.available, nowait.handed_out,
        static_cast<unsigned long long>(nowait.refills));
  const region::Stats regions = region::stats();
  w.add("\"kv\":{\"regions\":%zu,\"region_bytes\":%zu,\"fallbacks\":%llu,\"direct\":%llu,"
        "\"remap_moves\":%llu,\"grown_in_place\":%llu,\"arena_instead\":%llu},",
        regions.regions, regions.bytes, get(g_counters.kv.fallbacks),
        get(g_counters.kv.to_region), static_cast<unsigned long long>(regions.moved),
        static_cast<unsigned long long>(regions.grown_in_place),
        get(g_counters.kv.arena_instead));
  w.add("\"heap\":{\"allocated\":%zu,\"active\":%zu,\"resident\":%zu,\"mapped\":%zu,"
        "\"retained\":%zu,\"metadata\":%zu,\"dirty\":%zu,\"nmalloc\":%llu,"
        "\"ndalloc\":%llu}}}",
        h.allocated, h.active, h.resident, h.mapped, h.retained, h.metadata, h.dirty,
        static_cast<unsigned long long>(h.nmalloc), static_cast<unsigned long long>(h.ndalloc));
  if (w.failed || w.used > INT32_MAX) return -1;
  return static_cast<int>(w.used);
}

void write_exit_stats(int signal) {
  // fault.record is written at a normal exit only (it names call sites through the loader).
  if (signal == 0) fault::write_record();
  const StatsPrint print = static_cast<StatsPrint>(g_config.stats_print.load());
  if (print == StatsPrint::kOff && g_config.stats_file[0] == '\0') return;
  // Once: a signal arriving during the normal exit's write (or a second signal) adds
  // nothing, and a process killed after exit() began writes them once.
  static std::atomic<bool> written{false};
  if (written.exchange(true)) return;
  char json[12288];
  int n = stats_json(json, sizeof(json), signal);
  if (n < 0 || static_cast<size_t>(n) >= sizeof(json)) {
    report("stats: the JSON did not fit in %zu bytes", sizeof(json));
    return;
  }
  if (print == StatsPrint::kJson) report_text("stats ", json);
  if (print == StatsPrint::kSummary) {
    char text[4096];
    const int m = stats_summary(text, sizeof(text), signal);
    if (m > 0 && static_cast<size_t>(m) < sizeof(text)) report_text("", text);
  }
  if (g_config.stats_file[0] != '\0') {
    const int fd = open_output_reported("stats_file", g_config.stats_file, Output::kWhole);
    if (fd < 0) return;
    json[n++] = '\n';
    if (!write_all(fd, json, static_cast<size_t>(n)))
      report("stats_file: cannot write '%s'", g_config.stats_file);
    close(fd);
  }
}

}  // namespace allocscope
