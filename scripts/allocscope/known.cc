// known.cc: see known.h.
#include "known.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "quote.h"
#include "sweep_report.h"

namespace allocscope::cmd {
namespace {

// The report's points, or nothing when it has none.
const Json::Array &ReportPoints(const Json &report) {
  static const Json::Array kNone;
  const Json *points = report.find("points");
  return points != nullptr && points->is_array() ? points->as_array() : kNone;
}

}  // namespace

absl::StatusOr<absl::flat_hash_set<std::string>> ReadKnown(const std::string &path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("--known ", path, ": cannot read the file"));
  absl::flat_hash_set<std::string> ids;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    absl::string_view id = line;
    if (const size_t hash = id.find('#'); hash != absl::string_view::npos) id = id.substr(0, hash);
    id = absl::StripAsciiWhitespace(id);
    if (id.empty()) continue;
    if (id.find_first_of(" \t") != absl::string_view::npos)
      return absl::InvalidArgumentError(
          absl::StrCat("--known ", path, ":", number, ": '", id,
                       "' is not a point id (one id a line, as --write-known writes them)"));
    ids.emplace(id);
  }
  return ids;
}

std::string KnownText(const Json &report) {
  std::vector<std::string> command;
  if (const Json *c = report.find("command"); c != nullptr && c->is_array())
    for (const Json &arg : c->as_array()) command.push_back(arg.is_string() ? arg.as_string() : "");
  std::string out = absl::StrCat("# allocscope sweep --mode ", JsonText(report, "mode"),
                                 ": failing points of ", ShellJoin(command), "\n");
  for (const Json &p : ReportPoints(report))
    if (IsFailingOutcome(JsonText(p, "outcome")))
      absl::StrAppend(&out, JsonText(p, "id"), "  # ", JsonText(p, "outcome"), " at ",
                      JsonText(p, "source").empty() ? JsonText(p, "callsite")
                                                    : JsonText(p, "source"),
                      "\n");
  return out;
}

std::vector<std::string> NewFailures(const Json &report,
                                     const absl::flat_hash_set<std::string> &known) {
  std::vector<std::string> ids;
  for (const Json &p : ReportPoints(report)) {
    const std::string id = JsonText(p, "id");
    if (IsFailingOutcome(JsonText(p, "outcome")) && !known.contains(id)) ids.push_back(id);
  }
  return ids;
}

}  // namespace allocscope::cmd
