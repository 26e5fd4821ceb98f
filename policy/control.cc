// control.cc: see control.h. apply() has one case per configuration key (options.h's Key).
#include "control.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_reserve.h"
#include "budget.h"
#include "exit_signals.h"
#include "fault.h"
#include "gate.h"
#include "live_page.h"
#include "observe.h"
#include "options.h"
#include "profile.h"
#include "region.h"
#include "report.h"
#include "rules.h"

namespace allocscope {
namespace {

template <size_t N>
void set_text(char (&dest)[N], std::string_view v) {
  const size_t n = v.size() < N ? v.size() : N - 1;
  memcpy(dest, v.data(), n);
  dest[n] = '\0';
}

// The stats, the live page and the timeline are written on SIGTERM, SIGINT and SIGHUP too
// (exit_signals.h), once any of them is wanted. The live page and the timeline also need
// every thread's activity callback, their events (budget.h: watch_threads), which costs
// each thread a mallctl at its start: the stats alone do not ask for it (their peak is then
// the limit's, or none).
void arm_observers() {
  if (!exit_signals::wanted()) return;
  if (g_config.control.load() || g_config.timeline_file[0] != '\0') budget::watch_threads();
  observe::start();
  if (exit_signals::arm) exit_signals::arm();
}

// Applies one setting; a Refusal if its module refuses it (reported as a bad value).
Refusal apply(const Setting &s, void *) {
  Config &c = g_config;
  FaultSettings &f = g_fault_settings;
  switch (s.key) {
    case Key::kPolicy:
      c.policy.store(s.flags);
      gate::publish_default_policy(s.flags);
      return nullptr;
    case Key::kLimit:
      if (s.on) return budget::set_cgroup_limit(s.number, c.cgroup_dir);
      budget::set_limit(s.number);
      return nullptr;
    case Key::kLimitScope: return budget::set_tree_scope(s.on);
    case Key::kCgroupDir: set_text(c.cgroup_dir, s.text); return nullptr;
    case Key::kArenaLimit: budget::set_arena_limit(s.number); return nullptr;
    case Key::kNowaitReserve:
      if (!atomic_reserve::configure(s.number))
        report("nowait_reserve:%llu: the system refused to map it; the atomic reserve is off",
               static_cast<unsigned long long>(s.number));
      return nullptr;
    case Key::kKvThreshold: c.kv_threshold.store(s.number); return nullptr;
    case Key::kKvDirect:
      c.kv_to_region_from.store(s.number);
      gate::publish_kv_to_region(s.number != 0);
      return nullptr;
    case Key::kKvGuard: region::set_guard(s.on); return nullptr;
    case Key::kKvWindow: return region::set_window_size(s.number) ? nullptr : kRefused;
    case Key::kEmergency: budget::set_emergency(s.number); return nullptr;
    case Key::kMaxSize:
      c.max_size.store(s.number);
      gate::publish_max_size(s.number);
      return nullptr;
    case Key::kNofailMax: c.nofail_max.store(s.number); return nullptr;
    case Key::kNofailOverdrawMs: c.nofail_overdraw_ms.store(s.number); return nullptr;
    case Key::kRetryMax: c.retry_max.store(static_cast<unsigned>(s.number)); return nullptr;
    case Key::kNofailInNowait: c.nofail_in_nowait.store(s.action); return nullptr;
    case Key::kStallWarnMs: c.stall_warn_ms.store(s.number); return nullptr;
    case Key::kRules: return rules::configure(s.text) ? nullptr : kRefused;
    case Key::kWarn: c.warn.store(s.on); return nullptr;
    case Key::kWarnBurst: c.warn_burst.store(static_cast<unsigned>(s.number)); return nullptr;
    case Key::kStrict: c.strict.store(s.on); return nullptr;
    case Key::kStatsPrint:
      c.stats_print.store(static_cast<uint8_t>(s.number));
      arm_observers();
      return nullptr;
    // Output paths: relative ones resolved now (report.h), not at each write.
    case Key::kStatsFile:
      if (!output_path_value(s.text, c.stats_file)) return kRefused;
      arm_observers();
      return nullptr;
    case Key::kLogFile: return log_file_value(s.text, c.log_file) ? nullptr : kRefused;
    case Key::kControl:
      c.control.store(s.on);
      if (s.on) {
        if (Refusal why = live_page::open_page()) return why;
      } else {
        live_page::close_page();
      }
      arm_observers();
      return nullptr;
    case Key::kTimelineFile:
      if (!output_path_value(s.text, c.timeline_file)) return kRefused;
      arm_observers();
      return nullptr;
    case Key::kProfile: return profile::dump();
    // fault.*: the settings, then fault.cc brings its state and the gate in step.
    case Key::kFaultProbability: f.probability.store(s.number); f.enabled.store(true); break;
    case Key::kFaultInterval: f.interval.store(s.number); break;
    case Key::kFaultTimes: f.times.store(s.signed_number); break;
    case Key::kFaultSpace: f.space.store(static_cast<int64_t>(s.number)); break;
    case Key::kFaultNth: f.nth.store(s.number); break;
    case Key::kFaultSizeMin: f.size_min.store(s.number); break;
    case Key::kFaultSizeMax: f.size_max.store(s.number); break;
    case Key::kFaultCaller: set_text(f.caller, s.text); f.enabled.store(true); break;
    case Key::kFaultReject: set_text(f.reject, s.text); break;
    case Key::kFaultDepth: f.depth.store(static_cast<int>(s.number)); break;
    case Key::kFaultCallsite:
      set_text(f.callsite_module, s.module);
      f.callsite_offset.store(s.offset);
      f.callsite_set.store(!s.module.empty());
      if (!s.module.empty()) f.enabled.store(true);
      break;
    case Key::kFaultThreads: f.marked_only.store(s.on); break;
    case Key::kFaultSeed: f.seed.store(s.number); break;
    case Key::kFaultVerbose: f.verbose.store(static_cast<int>(s.number)); break;
    case Key::kFaultLog:
      if (!output_path_value(s.text, f.log)) return kRefused;
      break;
    case Key::kFaultRecord:
      if (!output_path_value(s.text, f.record)) return kRefused;
      break;
    case Key::kFaultReset: f = FaultSettings{}; break;
    case Key::kFaultOnly: set_text(f.only, s.text); break;
    case Key::kFaultStack:
      f.stack.store(s.number);
      f.stack_set.store(s.on);
      if (s.on) f.enabled.store(true);
      break;
    case Key::kFaultPersistent: f.persistent.store(s.on); break;
    case Key::kFaultTrackAll: f.track_all.store(s.on); break;
    case Key::kFaultEvents:
      if (!output_path_value(s.text, f.events)) return kRefused;
      break;
  }
  fault::settings_changed(s.key);
  return nullptr;
}

}  // namespace

int apply_config(std::string_view text, const char *source) {
  int bad;
  {
    MutexLock lock(g_config_mutex);
    bad = parse_config(
        text, source, apply, [](const char *line, void *) { report("%s", line); }, nullptr);
  }
  if (bad != 0 && g_config.strict.load()) {
    report("%s: strict:true, so bad configuration is fatal", source);
    abort();
  }
  return bad;
}

namespace {
struct Collected {
  char *errors;
  size_t cap;
  size_t used;
};
}  // namespace

int try_apply_config(std::string_view text, const char *source, char *errors, size_t cap) {
  if (!g_config_mutex.try_lock()) return -1;
  Collected out{errors, cap, 0};
  if (cap != 0) errors[0] = '\0';
  const int bad = parse_config(
      text, source, apply,
      [](const char *line, void *ctx) {
        report("%s", line);
        Collected &c = *static_cast<Collected *>(ctx);
        if (c.used >= c.cap) return;
        const int n = snprintf(c.errors + c.used, c.cap - c.used, "%s%s", c.used ? "\n" : "", line);
        if (n > 0) c.used = c.used + static_cast<size_t>(n) < c.cap ? c.used + n : c.cap - 1;
      },
      &out);
  g_config_mutex.unlock();
  return bad;
}

}  // namespace allocscope
