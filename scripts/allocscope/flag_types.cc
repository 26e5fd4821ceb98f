// flag_types.cc: see flag_types.h.
#include "flag_types.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace allocscope::cmd {

bool AbslParseFlag(absl::string_view text, PositiveCount *out, std::string *error) {
  int64_t n;
  if (!absl::SimpleAtoi(text, &n) || n < 1) {
    *error = "expected a whole number from 1";
    return false;
  }
  out->value = n;
  return true;
}

std::string AbslUnparseFlag(PositiveCount count) { return absl::StrCat(count.value); }

bool AbslParseFlag(absl::string_view text, Seconds *out, std::string *error) {
  double s;
  if (!absl::SimpleAtod(text, &s) || !std::isfinite(s) || s <= 0) {
    *error = "expected a positive number of seconds, e.g. 30 or 0.5";
    return false;
  }
  out->value = absl::Seconds(s);
  return true;
}

std::string AbslUnparseFlag(Seconds seconds) {
  return absl::StrCat(absl::ToDoubleSeconds(seconds.value));
}

}  // namespace allocscope::cmd
