// replay.h: `allocscope sweep --replay ID REPORT.json`: one point of a report run again
// alone, under the same wiring as in the sweep (stdin from the same file, stdout and
// stderr to files, a fresh copy of the working directory), and judged against a baseline
// run again, as the sweep judges.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "json.h"
#include "launcher.h"
#include "sweeper.h"

namespace allocscope::cmd {

struct ReplayResult {
  std::string outcome;       // the class, as the sweep names it
  std::string text;          // "crash (SIGSEGV)", "handled (exit 3)", ...
  bool matched = false;      // the point's fault.* pairs failed an allocation
};

// The point of `report` whose id is `id`; NotFound names the report and an id it has.
absl::StatusOr<Json> FindPoint(const Json &report, const std::string &id,
                               const std::string &report_name);

// Runs a fresh baseline and `point` through `launcher`, judged as the sweep judges
// (sweeper.h RunOnePoint), with `plan`'s depth, only and ignore_output.
absl::StatusOr<ReplayResult> ReplayPoint(const SweepPlan &plan, Launcher &launcher,
                                         const Json &point);

}  // namespace allocscope::cmd
