// replay.cc: see replay.h.
#include "replay.h"

#include "absl/strings/str_cat.h"
#include "records.h"
#include "sweep_report.h"

namespace allocscope::cmd {

absl::StatusOr<Json> FindPoint(const Json &report, const std::string &id,
                               const std::string &report_name) {
  const Json::Array &points = report.find("points")->as_array();
  for (const Json &p : points)
    if (JsonText(p, "id") == id) return p;
  return absl::NotFoundError(absl::StrCat(
      report_name, " has no point ", id,
      points.empty() ? " (it has no points)"
                     : absl::StrCat(" (its ids look like ", JsonText(points.front(), "id"), ")")));
}

absl::StatusOr<ReplayResult> ReplayPoint(Launcher &launcher, const Json &report,
                                         const Json &point) {
  std::vector<std::string> fault;
  if (const Json *f = point.find("fault"); f != nullptr && f->is_array())
    for (const Json &pair : f->as_array()) fault.push_back(pair.is_string() ? pair.as_string() : "");
  absl::StatusOr<std::string> dir = launcher.NewDir("replay");
  if (!dir.ok()) return dir.status();
  std::vector<std::string> pairs = fault;
  pairs.push_back(absl::StrCat("fault.log:", *dir, "/fault.%p.jsonl"));
  absl::StatusOr<RunRecord> run = launcher.Run(*dir, pairs);
  if (!run.ok()) return run.status();
  absl::StatusOr<std::vector<Injection>> injections = ReadInjections(*dir, "fault");
  if (!injections.ok()) return injections.status();
  ReplayResult r;
  r.matched = !injections->empty();
  std::optional<int64_t> baseline_status;
  if (const Json *b = report.find("baseline"); b != nullptr)
    if (const Json *s = b->find("exit_status"); s != nullptr && s->is_int())
      baseline_status = s->as_int();
  // The sweeper's rules (sweeper.cc Classify), on the report's baseline.
  if (run->exit.timed_out) {
    r.outcome = r.text = "hang";
  } else if (!r.matched) {
    r.outcome = r.text = "not-reached";
  } else if (run->exit.signal) {
    r.outcome = "crash";
    r.text = absl::StrCat("crash (", SignalName(*run->exit.signal), ")");
  } else if (run->exit.exit_status && baseline_status &&
             *run->exit.exit_status == *baseline_status) {
    r.outcome = r.text = "clean";
  } else {
    r.outcome = "handled";
    r.text = absl::StrCat("handled (exit ", run->exit.exit_status.value_or(-1), ")");
  }
  return r;
}

}  // namespace allocscope::cmd
