// known.h: the sweep as a CI gate. A known-failures file (--known, written by
// --write-known) lists point ids, one a line ('#' starts a comment): failing points
// listed there do not fail the gate, so a project can adopt the sweep before fixing
// everything it finds, and still fail on any new crash.
#pragma once

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "json.h"

namespace allocscope::cmd {

// The ids a known-failures file lists. An error names the file and the line.
absl::StatusOr<absl::flat_hash_set<std::string>> ReadKnown(const std::string &path);

// The ids of the report's failing points (IsFailingOutcome), one a line, after a comment
// naming the command: what --write-known writes.
std::string KnownText(const Json &report);

// The ids of failing points that `known` does not list, in report order.
std::vector<std::string> NewFailures(const Json &report,
                                     const absl::flat_hash_set<std::string> &known);

}  // namespace allocscope::cmd
