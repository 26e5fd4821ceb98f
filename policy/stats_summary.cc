// stats_summary.cc: see stats_summary.h.
#include "stats_summary.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "budget.h"
#include "counters.h"
#include "exit_signals.h"
#include "failure_sites.h"
#include "region.h"
#include "reserve.h"
#include "resolve.h"
#include "sys.h"
#include "text_writer.h"

namespace allocscope {
namespace {

constexpr char kNext[] = "\nallocscope:   ";

// Seconds with two decimals from the preload's start to `ns` (sys::now_ns()).
void add_seconds(TextWriter &w, uint64_t ns) {
  const uint64_t start = stats::g_counters.started_ns.load(std::memory_order_relaxed);
  const uint64_t ms = ns > start ? (ns - start) / sys::kNsPerMs : 0;
  w.add("%llu.%02llu s", static_cast<unsigned long long>(ms / 1000),
        static_cast<unsigned long long>(ms % 1000 / 10));
}

// The program's name, from /proc/self/comm (a system call: safe in a handler).
void program_name(char *out, size_t len) {
  out[0] = '\0';
  const int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  const ssize_t n = read(fd, out, len - 1);
  close(fd);
  out[n > 0 ? n : 0] = '\0';
  for (char *c = out; *c != '\0'; ++c)
    if (*c == '\n') *c = '\0';
}

}  // namespace

const char *format_size(size_t bytes, char *buf, size_t len) {
  static const char *const kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) {
    snprintf(buf, len, "%zu B", bytes);
    return buf;
  }
  // Tenths of the unit, in integers (no floating point in a handler).
  int unit = 0;
  unsigned long long scaled = bytes;
  while (scaled >= 1024 * 1024 && unit < 3) {
    scaled /= 1024;
    ++unit;
  }
  const unsigned long long tenths = scaled * 10 / 1024;
  snprintf(buf, len, "%llu.%llu %s", tenths / 10, tenths % 10, kUnits[unit]);
  return buf;
}

int stats_summary(char *buf, size_t len, int signal) {
  using stats::g_counters;
  using stats::get;
  TextWriter w{buf, len};
  char name[32], a[32], b[32];
  program_name(name, sizeof(name));
  w.add("summary: %s, pid %d, ", name, static_cast<int>(getpid()));
  add_seconds(w, sys::now_ns());

  const size_t limit = budget::limit();
  w.add("%slimit     %s", kNext, limit ? format_size(limit, a, sizeof(a)) : "none");
  const budget::Peak peak = budget::peak();
  if (limit == 0 && !budget::watching())
    w.add("%speak      not followed (no limit, no control or timeline)", kNext);
  else
    w.add("%speak      %s", kNext, format_size(peak.bytes, a, sizeof(a)));
  if (limit != 0 && peak.bytes != 0)
    w.add(" (%llu %% of the limit)",
          static_cast<unsigned long long>(peak.bytes / (limit / 100 ? limit / 100 : 1)));
  if (peak.at_ns != 0) {
    w.add(" at ");
    add_seconds(w, peak.at_ns);
  }
  w.add("; rss peak %s", format_size(sys::peak_resident_bytes(), a, sizeof(a)));
  const size_t now = signal ? budget::charged_estimate() : budget::charged();
  w.add("%snow       %s; rss %s", kNext, format_size(now, a, sizeof(a)),
        format_size(sys::resident_bytes(), b, sizeof(b)));

  unsigned long long failures = 0, passes = 0, reclaimed = 0, waits = 0, wait_ms = 0,
                     stalls = 0, overdraws = 0;
  for (const stats::PolicyCounters &p : g_counters.policy) {
    failures += get(p.failures);
    passes += get(p.reclaim_passes);
    reclaimed += get(p.reclaimed_bytes);
    waits += get(p.waits);
    wait_ms += get(p.wait_ns) / 1000000;
    stalls += get(p.stalls);
    overdraws += get(p.overdraws);
  }
  w.add("%sfailures  %llu", kNext, failures);
  const char *sep = ": ";
  for (int c = 0; c < 5; ++c)
    if (const unsigned long long f = get(g_counters.policy[c].failures)) {
      w.add("%s%s %llu", sep, contract_name(static_cast<Contract>(c)), f);
      sep = ", ";
    }
  const failure_sites::Site *top[failure_sites::kTop];
  uint64_t other;
  const int n = failure_sites::top(top, &other);
  for (int i = 0; i < n; ++i) {
    w.add("%s            %6llu  %s (", kNext,
          static_cast<unsigned long long>(failure_sites::total(*top[i])), top[i]->name);
    const char *comma = "";
    for (int c = 0; c < 5; ++c)
      if (const uint64_t f = top[i]->failures[c].load(std::memory_order_relaxed)) {
        w.add("%s%s %llu", comma, contract_name(static_cast<Contract>(c)),
              static_cast<unsigned long long>(f));
        comma = ", ";
      }
    w.add(")");
  }
  if (other != 0)
    w.add("%s            %6llu  at other sites", kNext, static_cast<unsigned long long>(other));
  w.add("%sreclaim   %llu passes, %s freed, %llu reclaimer calls", kNext, passes,
        format_size(reclaimed, a, sizeof(a)), get(g_counters.reclaimer_calls));
  w.add("%swaits     nofail %llu (%llu ms), stalls %llu, overdraws %llu", kNext, waits, wait_ms,
        stalls, overdraws);
  const region::Stats regions = region::stats();
  w.add("%sregions   %zu (%s)", kNext, regions.regions, format_size(regions.bytes, a, sizeof(a)));
  if (signal == 0) {  // reserve::stats() sums the unused reserves under the budget's lock
    const reserve::Stats reserves = reserve::stats();
    w.add("; reserves %llu made, %llu exhausted, %s unused",
          static_cast<unsigned long long>(reserves.made),
          static_cast<unsigned long long>(reserves.exhausted),
          format_size(reserves.unused_bytes, a, sizeof(a)));
  }
  if (signal != 0)
    w.add("%sstopped   by %s (stats written by allocscope's handler, then the signal's "
          "default action)",
          kNext, exit_signals::name(signal));
  if (w.failed || w.used > INT32_MAX) return -1;
  return static_cast<int>(w.used);
}

}  // namespace allocscope
