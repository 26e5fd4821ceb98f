// merge.cc: see merge.h.
#include "merge.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "paths.h"
#include "sweep_report.h"

namespace allocscope::cmd {
namespace {

int64_t IntMember(const Json &object, absl::string_view key) {
  const Json *v = object.find(key);
  return v != nullptr && v->is_int() ? v->as_int() : 0;
}

double NumberMember(const Json &object, absl::string_view key) {
  const Json *v = object.find(key);
  if (v == nullptr) return 0;
  if (v->is_int()) return static_cast<double>(v->as_int());
  // Json has no double accessor: its text is the number.
  return v->is_null() ? 0 : std::stod(v->Dump());
}

}  // namespace

absl::StatusOr<Json> ReadReport(const std::string &path) {
  const std::optional<std::string> text = ReadWholeFile(path);
  if (!text) return absl::NotFoundError(absl::StrCat(path, ": cannot read the file"));
  absl::StatusOr<Json> report = ParseJson(*text);
  if (!report.ok())
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not JSON (", report.status().message(), ")"));
  const Json *schema = report->find("schema");
  if (schema == nullptr || !schema->is_int() || report->find("points") == nullptr)
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not an allocscope sweep report of schema ", kReportSchema,
                     " (no \"schema\" or \"points\"; write one with allocscope sweep --json)"));
  if (schema->as_int() != kReportSchema)
    return absl::InvalidArgumentError(absl::StrCat(path, ": a report of schema ", schema->as_int(),
                                                   "; this allocscope reads schema ",
                                                   kReportSchema));
  return report;
}

absl::StatusOr<Json> MergeReports(const std::vector<Json> &reports,
                                  const std::vector<std::string> &names) {
  if (reports.empty()) return absl::InvalidArgumentError("no reports to merge");
  const Json &first = reports.front();
  const std::string command = first.find("command")->Dump();
  std::vector<Json> points;
  absl::flat_hash_set<std::string> seen;
  bool complete = true;
  double seconds = 0;
  int64_t runs = 0;
  for (size_t i = 0; i < reports.size(); ++i) {
    const Json &r = reports[i];
    const Json *c = r.find("command");
    if (c == nullptr || c->Dump() != command || JsonText(r, "mode") != JsonText(first, "mode"))
      return absl::InvalidArgumentError(absl::StrCat(
          names[i], " is a sweep of another command or mode than ", names[0],
          ": only the shards of one sweep (or a sweep and its --resume) merge"));
    if (const Json *done = r.find("complete"); done != nullptr && done->is_bool())
      complete = complete && done->as_bool();
    if (const Json *s = r.find("summary"); s != nullptr) {
      seconds += NumberMember(*s, "sweep_seconds");
      runs += IntMember(*s, "runs");
    }
    for (const Json &p : r.find("points")->as_array())
      if (seen.insert(JsonText(p, "id")).second) points.push_back(p);
  }
  std::stable_sort(points.begin(), points.end(), [](const Json &a, const Json &b) {
    return IntMember(a, "point") < IntMember(b, "point");
  });
  // nth: each shard ends at its own first unreached n; the program's allocations end at
  // the lowest of them, and nothing past it is a point.
  if (JsonText(first, "mode") == "nth") {
    std::optional<int64_t> end;
    for (const Json &p : points)
      if (JsonText(p, "outcome") == "not-reached" && (!end || IntMember(p, "point") < *end))
        end = IntMember(p, "point");
    if (end)
      points.erase(std::remove_if(points.begin(), points.end(),
                                  [&](const Json &p) { return IntMember(p, "point") > *end; }),
                   points.end());
  }
  Json all{Json::Array{}};
  for (Json &p : points) all.push(std::move(p));
  Json merged{Json::Object{}};
  for (const auto &[key, value] : first.as_object()) {
    if (key == "points") {
      merged.set(key, all);
    } else if (key == "coverage" && value.is_object()) {
      Json c{Json::Object{}};
      for (const auto &[k, v] : value.as_object())
        c.set(k, k == "points_run" ? Json(static_cast<int64_t>(all.as_array().size())) : v);
      merged.set(key, std::move(c));
    } else if (key == "complete") {
      merged.set(key, complete);
    } else if (key == "selection") {
      Json from{Json::Array{}};
      for (const std::string &n : names) from.push(n);
      merged.set(key, Json::Object{{"shard", Json()},
                                   {"sample", value.find("sample") ? *value.find("sample") : Json()},
                                   {"seed", value.find("seed") ? *value.find("seed") : Json()},
                                   {"resumed_from", Json()},
                                   {"resumed_points", 0},
                                   {"merged_from", std::move(from)}});
    } else if (key == "summary") {
      Json s{Json::Object{}};
      for (const auto &[k, v] : value.as_object()) {
        if (k == "points")
          s.set(k, static_cast<int64_t>(all.as_array().size()));
        else if (k == "counts")
          s.set(k, CountOutcomes(all));
        else if (k == "sweep_seconds")
          s.set(k, seconds);
        else if (k == "runs")
          s.set(k, runs);
        else if (k == "runs_per_second")
          s.set(k, Json());  // shards ran side by side: no one rate
        else
          s.set(k, v);
      }
      merged.set(key, std::move(s));
    } else {
      merged.set(key, value);
    }
  }
  return merged;
}

}  // namespace allocscope::cmd
