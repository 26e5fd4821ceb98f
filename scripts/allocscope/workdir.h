// workdir.h: isolation of a sweep's runs from each other's files. Each run starts in a
// fresh copy of the starting working directory (or of --workdir-template DIR), so a file
// one run creates (a database, a lock, a cache) is not there for the next: without it,
// `sqlite3 test.db` is "handled" at every point because the first run made the tables.
// Copies are bounded (kWorkdirMaxBytes, kWorkdirMaxFiles) so that a sweep started in a
// home directory says so instead of copying gigabytes per run.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace allocscope::cmd {

inline constexpr uint64_t kWorkdirMaxBytes = uint64_t{64} << 20;
inline constexpr uint64_t kWorkdirMaxFiles = 10000;

// The bytes of regular files under `dir` (symbolic links are not followed), skipping
// `exclude` (the sweep's own directory, when it lies inside). FailedPrecondition, with one
// line naming the directory, the cap and the ways out, when the tree holds more than the
// caps allow (the walk stops there).
absl::StatusOr<uint64_t> MeasureWorkdir(const std::string &dir, const std::string &exclude);

// Copies the tree `from` to `to` (which must not exist): directories, regular files with
// their modes and modification times, symbolic links as links; other files (sockets,
// devices, fifos) are left out. `exclude` is skipped.
absl::Status CopyTree(const std::string &from, const std::string &to, const std::string &exclude);

}  // namespace allocscope::cmd
