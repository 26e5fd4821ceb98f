// flag_types.h: value types for the command's absl flags whose values must be in a range:
// absl parses them through their AbslParseFlag, so a bad value is refused, with what is
// accepted, while the command line is read.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace allocscope::cmd {

// A whole number from 1 (--jobs, --max-points).
struct PositiveCount {
  int64_t value;
};
bool AbslParseFlag(absl::string_view text, PositiveCount *out, std::string *error);
std::string AbslUnparseFlag(PositiveCount count);

// A positive number of seconds, e.g. 30 or 0.5 (--timeout).
struct Seconds {
  absl::Duration value;
};
bool AbslParseFlag(absl::string_view text, Seconds *out, std::string *error);
std::string AbslUnparseFlag(Seconds seconds);

}  // namespace allocscope::cmd
