// report_json.cc: the sweep's JSON report (--json). Durations are in seconds; absent
// values are null.
#include "sweep_report.h"

namespace allocscope::cmd {
namespace {

Json Places(const std::vector<SourcePlace> &places) {
  Json out{Json::Array{}};
  for (const SourcePlace &p : places)
    out.push(Json::Object{{"function", Json::Optional(p.function)},
                          {"source", Json::Optional(p.source)}});
  return out;
}

Json Frame(const Symbol &s) {
  return Json::Object{{"frame", s.frame},
                      {"module", Json::Optional(s.module)},
                      {"function", Json::Optional(s.function)},
                      {"source", Json::Optional(s.source)},
                      {"inlined", Places(s.inlined)}};
}

Json InjectionJson(const Injection &in, const std::vector<Symbol> *frames) {
  Json backtrace{Json::Array{}};
  if (frames != nullptr)
    for (const Symbol &s : *frames) backtrace.push(Frame(s));
  return Json::Object{{"pid", in.pid},
                      {"tid", in.tid},
                      {"size", in.size},
                      {"function", in.function},
                      {"nth", in.nth},
                      {"callsite", Json::Optional(in.callsite)},
                      {"module", Json::Optional(in.module)},
                      {"offset", Json::Optional(in.offset)},
                      {"backtrace", std::move(backtrace)}};
}

// The members every run has, appended to `out`.
void AddRun(Json *out, const RunRecord &run) {
  out->set("exit_status", Json::Optional(run.exit.exit_status));
  out->set("signal", Json::Optional(run.exit.signal));
  out->set("timed_out", run.exit.timed_out);
  out->set("duration", RoundSeconds(run.exit.duration, 4));
  out->set("stdout", run.stdout_tail);
  out->set("stderr", run.stderr_tail);
}

Json PointJson(const Point &p) {
  Json out{Json::Object{}};
  out.set("point", p.key);
  out.set("label", p.label);
  Json fault{Json::Array{}};
  for (const std::string &pair : p.fault) fault.push(pair);
  out.set("fault", std::move(fault));
  out.set("outcome", OutcomeName(p.outcome));
  out.set("signal_name", p.run.exit.signal ? Json(SignalName(*p.run.exit.signal)) : Json());
  out.set("callsite", Json::Optional(p.callsite));
  Json injections{Json::Array{}};
  for (size_t i = 0; i < p.injections.size(); ++i)
    injections.push(InjectionJson(
        p.injections[i], i < p.injection_frames.size() ? &p.injection_frames[i] : nullptr));
  out.set("injections", std::move(injections));
  AddRun(&out, p.run);
  if (p.crash_backtrace) {
    Json trace{Json::Array{}};
    for (const std::string &line : *p.crash_backtrace) trace.push(line);
    out.set("crash_backtrace", std::move(trace));
  }
  out.set("function", Json::Optional(p.function));
  out.set("source", Json::Optional(p.source));
  out.set("inlined", Places(p.inlined));
  AddFindingsJson(&out, p.findings);
  return out;
}

Json BaselineJson(const Baseline &b) {
  Json out{Json::Object{}};
  AddRun(&out, b.run);
  out.set("recorded", b.recorded);
  Json sites{Json::Array{}};
  for (const Site &s : b.sites)
    sites.push(Json::Object{{"callsite", s.callsite},
                            {"module", s.module},
                            {"count", s.count},
                            {"function", Json::Optional(s.function)},
                            {"source", Json::Optional(s.source)}});
  out.set("sites", std::move(sites));
  out.set("allocations", Json::Optional(b.allocations));
  return out;
}

Json SummaryJson(const Summary &s) {
  Json counts{Json::Object{}};
  for (const Outcome o : kOutcomes)
    counts.set(std::string(OutcomeName(o)), s.counts[static_cast<int>(o)]);
  return Json::Object{{"points", s.points},
                      {"counts", std::move(counts)},
                      {"runs", s.runs},
                      {"sweep_seconds", s.sweep_seconds},
                      {"runs_per_second", Json::Optional(s.runs_per_second)},
                      {"baseline_exit_status", Json::Optional(s.baseline_exit_status)},
                      {"baseline_seconds", s.baseline_seconds}};
}

}  // namespace

Json ReportJson(const Report &report) {
  Json command{Json::Array{}};
  for (const std::string &arg : report.command) command.push(arg);
  Json points{Json::Array{}};
  for (const Point &p : report.points) points.push(PointJson(p));
  return Json::Object{{"command", std::move(command)},
                      {"mode", report.mode},
                      {"library", report.library},
                      {"conf", report.conf},
                      {"jobs", report.jobs},
                      {"timeout", report.timeout},
                      {"max_points", Json::Optional(report.max_points)},
                      {"baseline", BaselineJson(report.baseline)},
                      {"points", std::move(points)},
                      {"summary", SummaryJson(report.summary)}};
}

}  // namespace allocscope::cmd
