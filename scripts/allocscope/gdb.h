// gdb.h: crash backtraces for a sweep's crash points, from a re-run of the point under
// gdb, only with --gdb (the runs' own crash records give each crash its stack: outcome.h).
// Crashes whose injection backtraces are the same share one gdb run.
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "launcher.h"
#include "progress.h"
#include "sweep_report.h"

namespace allocscope::cmd {

// Gives every crash point its crash_backtrace (gdb's "#N" lines; empty when gdb saw no
// crash), running `jobs` gdb runs at a time. Without gdb on PATH it says so and does
// nothing. An error only when a run cannot be set up.
absl::Status AddCrashBacktraces(Launcher &launcher, std::vector<Point> &points, int jobs,
                                Progress &progress);

}  // namespace allocscope::cmd
