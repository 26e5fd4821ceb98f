// point_runner.h: the sweep's job pool: runs failure points in parallel, issuing them in
// ascending order, and (nth mode) stops at the first point the program never reaches.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "progress.h"
#include "subprocess.h"
#include "sweep_report.h"

namespace allocscope::cmd {

using RunPointFn = std::function<absl::StatusOr<Point>(int64_t key)>;

// Runs run_point(key) for key = 1, 2, ... up to `last` (no end if nullopt) in `jobs`
// threads, counting each on `progress`. With stop_on_unreached it issues no key above
// the first not-reached one and drops the not-reached results above it (reached ones
// already in flight are kept). Issues nothing more once `runner` is stopped, or a point
// failed to run (its error is returned). The points come back in key order; once
// `runner` is stopped, those that finished before (the caller asks runner.stopped()).
absl::StatusOr<std::vector<Point>> RunPoints(std::optional<int64_t> last,
                                             const RunPointFn &run_point, int jobs,
                                             bool stop_on_unreached, Progress &progress,
                                             GroupRunner &runner);

}  // namespace allocscope::cmd
