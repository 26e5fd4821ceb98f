// sweeper.h: the sweep proper, once the command line is read: the baseline run, the
// failure points (by count or by call site) run by the job pool and judged against the
// baseline, the crash backtraces, the symbols, and the report they make.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "launcher.h"
#include "shard.h"
#include "sweep_report.h"

namespace allocscope::cmd {

enum class SweepMode {
  kNth,       // fault.nth:1, :2, ... until the n-th allocation is not reached
  kCallsite,  // fault.callsite:SITE,fault.times:1 for each site the baseline recorded
  kStack,     // fault.stack:HASH,fault.times:1 for each stack the baseline recorded
};

// "nth", "callsite", "stack": the --mode values.
absl::string_view SweepModeName(SweepMode mode);

struct SweepPlan {
  SweepMode mode = SweepMode::kStack;
  int jobs = 2;                       // runs at a time
  std::optional<int64_t> max_points;  // at most this many points
  std::string conf;                   // --conf, for the report
  PointFilter filter;                 // --shard, and --resume's points
  std::optional<int64_t> sample;      // --sample N: N points drawn with `seed`
  uint64_t seed = 0;
  std::optional<int64_t> nth_end;     // nth: no point from this n on (--resume's end)
  std::optional<int> depth;           // --depth: fault.depth, the frames a stack keeps
  std::vector<std::string> only;      // --only: fault.only, the modules points must pass
  bool persistent = false;            // --persistent: every later allocation fails too
  bool ignore_output = false;         // --ignore-output: judge by exit status only
  bool gdb = false;                   // --gdb: crash backtraces from a re-run under gdb too
};

// The fault.* pairs of a callsite-mode point.
std::vector<std::string> CallsiteFault(const std::string &site);

// `plan`'s depth and only from a point's fault pairs (fault.depth, fault.only), so that a
// replay's baseline runs as the sweep's did.
void ApplySelectionPairs(const std::vector<std::string> &pairs, SweepPlan *plan);

// One point run again (sweep --replay): a fresh baseline, then CMD with `fault`, judged
// exactly as in a sweep (outcome.h).
absl::StatusOr<Point> RunOnePoint(const SweepPlan &plan, Launcher &launcher,
                                  std::vector<std::string> fault);

// Runs the sweep with `launcher` (CMD under `preload`, whose program file is `program`).
// When the launcher's runner was stopped (SIGINT) the report holds the points that
// finished and is marked incomplete; FailedPrecondition when the
// baseline cannot be swept (it crashed, hung, or recorded nothing in callsite mode).
absl::StatusOr<Report> Sweep(const SweepPlan &plan, Launcher &launcher, const std::string &program,
                             const std::string &preload);

}  // namespace allocscope::cmd
