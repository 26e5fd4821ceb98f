// replay.cc: see replay.h.
#include "replay.h"

#include "absl/strings/str_cat.h"
#include "records.h"
#include "subprocess.h"
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

absl::StatusOr<ReplayResult> ReplayPoint(const SweepPlan &plan, Launcher &launcher,
                                         const Json &point) {
  std::vector<std::string> fault;
  if (const Json *f = point.find("fault"); f != nullptr && f->is_array())
    for (const Json &pair : f->as_array()) fault.push_back(pair.is_string() ? pair.as_string() : "");
  absl::StatusOr<Point> p = RunOnePoint(plan, launcher, std::move(fault));
  if (!p.ok()) return p.status();
  ReplayResult r;
  r.matched = !p->injections.empty();
  r.outcome = std::string(OutcomeName(p->outcome));
  r.text = r.outcome;
  if (p->run.exit.signal)
    r.text = absl::StrCat(r.outcome, " (", SignalName(*p->run.exit.signal), ")");
  else if (p->outcome == Outcome::kHandled || p->outcome == Outcome::kOomExit)
    r.text = absl::StrCat(r.outcome, " (exit ", p->run.exit.exit_status.value_or(-1), ")");
  return r;
}

}  // namespace allocscope::cmd
