// report_json.cc: the sweep's JSON report (--json). Durations are in seconds; absent
// values are null. README.md ("The sweep's JSON report") documents every field of
// kReportSchema; a field whose meaning changes raises it.
#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "paths.h"
#include "sweep_report.h"

namespace allocscope::cmd {
namespace {

// An absolute path without "." and "dir/.." steps (DWARF spells a build tree's sources
// as build/../src/x.c), for SARIF's URIs and a reader's eyes; others as they are.
std::string CleanPath(const std::string &path) {
  if (path.empty() || path[0] != '/') return path;
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.emplace_back(part);
  }
  return absl::StrCat("/", absl::StrJoin(parts, "/"));
}

// "file.c:12" split at its last ':' when a line number follows.
void SplitSource(const std::optional<std::string> &source, Json *frame) {
  std::optional<std::string> file;
  std::optional<int64_t> line;
  if (source) {
    const size_t colon = source->rfind(':');
    int64_t n;
    if (colon != std::string::npos && absl::SimpleAtoi(source->substr(colon + 1), &n)) {
      file = CleanPath(source->substr(0, colon));
      line = n;
    } else {
      file = *source;
    }
  }
  frame->set("file", Json::Optional(file));
  frame->set("line", Json::Optional(line));
}

// A "module+0xoffset" frame as the stack fields spell it: module (the name fault.* keys
// accept), offset, and what symbolisation found.
Json StackFrame(const Symbol &s) {
  Json out{Json::Object{}};
  const size_t plus = s.frame.rfind('+');
  const bool split = plus != std::string::npos && absl::StartsWith(s.frame.substr(plus + 1), "0x");
  out.set("module", split ? Json(s.frame.substr(0, plus)) : Json());
  out.set("offset", split ? Json(s.frame.substr(plus + 1)) : Json(s.frame));
  out.set("function", Json::Optional(s.function));
  SplitSource(s.source, &out);
  return out;
}

// gdb's "#3  0x000055555555523d in main () at x.c:53" (or "... from /lib/libc.so.6")
// as a stack frame; gdb gives no module offset.
Json GdbFrame(absl::string_view line) {
  Json out{Json::Object{}};
  std::optional<std::string> module, function, source;
  absl::string_view rest = line;
  if (const size_t space = rest.find_first_of(" \t"); space != absl::string_view::npos)
    rest = absl::StripLeadingAsciiWhitespace(rest.substr(space));
  if (absl::StartsWith(rest, "0x")) {
    const size_t in = rest.find(" in ");
    rest = in == absl::string_view::npos ? absl::string_view() : rest.substr(in + 4);
  }
  if (const size_t paren = rest.find(" ("); paren != absl::string_view::npos)
    function = std::string(rest.substr(0, paren));
  if (const size_t at = rest.rfind(" at "); at != absl::string_view::npos)
    source = std::string(rest.substr(at + 4));
  if (const size_t from = rest.rfind(" from "); from != absl::string_view::npos)
    module = Basename(std::string(rest.substr(from + 6)));
  out.set("module", Json::Optional(module));
  out.set("offset", Json());
  out.set("function", Json::Optional(function));
  SplitSource(source, &out);
  return out;
}

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

Json PointJson(const Report &report, const Point &p) {
  Json out{Json::Object{}};
  out.set("id", PointId(report.mode, p.fault));
  out.set("point", p.key);
  out.set("label", p.label);
  Json fault{Json::Array{}};
  for (const std::string &pair : p.fault) fault.push(pair);
  out.set("fault", std::move(fault));
  out.set("outcome", OutcomeName(p.outcome));
  out.set("replay", ReplayCommand(report, p.fault));
  out.set("signal_name", p.run.exit.signal ? Json(SignalName(*p.run.exit.signal)) : Json());
  // The failed allocation's stack: the first injection's backtrace, innermost first.
  Json stack{Json::Array{}};
  if (!p.injection_frames.empty())
    for (const Symbol &s : p.injection_frames.front()) stack.push(StackFrame(s));
  // The caller a person looks at: the program's own frame nearest the allocation (a
  // strdup's allocation is libc's, its caller the program's), else the first frame
  // with a source line, else the first frame.
  Json caller;
  for (const Json &f : stack.as_array())
    if (!report.program_module.empty() && JsonText(f, "module") == report.program_module) {
      caller = f;
      break;
    }
  if (caller.is_null())
    for (const Json &f : stack.as_array())
      if (!JsonText(f, "file").empty()) {
        caller = f;
        break;
      }
  if (caller.is_null() && !stack.as_array().empty()) caller = stack.as_array().front();
  out.set("stack", std::move(stack));
  out.set("caller", std::move(caller));
  if (p.crash_backtrace) {
    Json frames{Json::Array{}};
    for (const std::string &line : *p.crash_backtrace) frames.push(GdbFrame(line));
    out.set("crash_stack", std::move(frames));
  } else {
    out.set("crash_stack", Json());
  }
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

Json SummaryJson(const Summary &s, const Json &points) {
  return Json::Object{{"points", static_cast<int64_t>(points.as_array().size())},
                      {"counts", CountOutcomes(points)},
                      {"runs", s.runs},
                      {"sweep_seconds", s.sweep_seconds},
                      {"runs_per_second", Json::Optional(s.runs_per_second)},
                      {"baseline_exit_status", Json::Optional(s.baseline_exit_status)},
                      {"baseline_seconds", s.baseline_seconds}};
}

Json SelectionJson(const Selection &s) {
  return Json::Object{
      {"shard", s.shard_index ? Json(absl::StrCat(*s.shard_index, "/", *s.shard_count)) : Json()},
      {"sample", Json::Optional(s.sample)},
      {"seed", Json::Optional(s.seed)},
      {"resumed_from", Json::Optional(s.resumed_from)},
      {"resumed_points", s.resumed_points}};
}

Json Notes(const std::vector<std::string> &notes) {
  Json out{Json::Array{}};
  for (const std::string &n : notes) out.push(n);
  return out;
}

// The "point" number of a JSON point, for ordering resumed and new points together.
int64_t PointKey(const Json &p) {
  const Json *key = p.find("point");
  return key != nullptr && key->is_int() ? key->as_int() : 0;
}

}  // namespace

Json CountOutcomes(const Json &points) {
  Json counts{Json::Object{}};
  for (const Outcome outcome : kOutcomes) {
    const absl::string_view name = OutcomeName(outcome);
    int64_t n = 0;
    for (const Json &p : points.as_array()) {
      const Json *o = p.find("outcome");
      if (o != nullptr && o->is_string() && o->as_string() == name) ++n;
    }
    counts.set(std::string(name), n);
  }
  return counts;
}

Json ReportJson(const Report &report) {
  Json command{Json::Array{}};
  for (const std::string &arg : report.command) command.push(arg);
  std::vector<Json> all = report.resumed;
  for (const Point &p : report.points) all.push_back(PointJson(report, p));
  std::stable_sort(all.begin(), all.end(),
                   [](const Json &a, const Json &b) { return PointKey(a) < PointKey(b); });
  Json points{Json::Array{}};
  for (Json &p : all) points.push(std::move(p));
  Json summary = SummaryJson(report.summary, points);
  // A resumed sweep ran some of its points before: coverage counts them all.
  std::optional<Json> coverage = report.coverage;
  if (coverage && !report.resumed.empty()) {
    Json updated{Json::Object{}};
    for (const auto &[k, v] : coverage->as_object())
      updated.set(k, k == "points_run" ? Json(static_cast<int64_t>(points.as_array().size())) : v);
    coverage = std::move(updated);
  }
  return Json::Object{{"schema", kReportSchema},
                      {"complete", report.complete},
                      {"command", std::move(command)},
                      {"cwd", report.cwd},
                      {"stdin", Json::Optional(report.stdin_file)},
                      {"allocscope", report.allocscope},
                      {"isolation", Json::Object{{"kind", report.isolation.kind},
                                                 {"source", report.isolation.source},
                                                 {"bytes", report.isolation.bytes}}},
                      {"selection", SelectionJson(report.selection)},
                      {"mode", report.mode},
                      {"library", report.library},
                      {"conf", report.conf},
                      {"ignore_output", report.ignore_output},
                      {"jobs", report.jobs},
                      {"timeout", report.timeout},
                      {"max_points", Json::Optional(report.max_points)},
                      {"baseline", BaselineJson(report.baseline)},
                      {"points", std::move(points)},
                      {"coverage", coverage ? *coverage : Json()},
                      {"notes", Notes(report.notes)},
                      {"summary", std::move(summary)}};
}

}  // namespace allocscope::cmd
