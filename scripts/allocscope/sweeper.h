// sweeper.h: the sweep proper, once the command line is read: the baseline run, the
// failure points (by count or by call site) run by the job pool and judged against the
// baseline, the crash backtraces, the symbols, and the report they make.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "launcher.h"
#include "shard.h"
#include "sweep_report.h"

namespace allocscope::cmd {

enum class SweepMode {
  kNth,       // fault.nth:1, :2, ... until the n-th allocation is not reached
  kCallsite,  // fault.callsite:SITE,fault.times:1 for each site the baseline recorded
};

// "nth", "callsite": the --mode values.
absl::string_view SweepModeName(SweepMode mode);

struct SweepPlan {
  SweepMode mode = SweepMode::kCallsite;
  int jobs = 2;                       // runs at a time
  std::optional<int64_t> max_points;  // at most this many points
  std::string conf;                   // --conf, for the report
  PointFilter filter;                 // --shard, and --resume's points
  std::optional<int64_t> sample;      // --sample N: N points drawn with `seed`
  uint64_t seed = 0;
  std::optional<int64_t> nth_end;     // nth: no point from this n on (--resume's end)
};

// The fault.* pairs of a callsite-mode point.
std::vector<std::string> CallsiteFault(const std::string &site);

// Runs the sweep with `launcher` (CMD under `preload`, whose program file is `program`).
// When the launcher's runner was stopped (SIGINT) the report holds the points that
// finished and is marked incomplete; FailedPrecondition when the
// baseline cannot be swept (it crashed, hung, or recorded nothing in callsite mode).
absl::StatusOr<Report> Sweep(const SweepPlan &plan, Launcher &launcher, const std::string &program,
                             const std::string &preload);

}  // namespace allocscope::cmd
