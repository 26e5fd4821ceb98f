// report_html.cc: the sweep's report as one self-contained HTML page (--html): no outside
// resource. One row per group of points (GroupPoints: crashes first), each with the
// source line of the failing allocation's caller and the command that replays it; the
// points, stacks and output fold away in <details>. A few lines of inline script filter
// the rows by outcome and by text; without script every row shows.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "quote.h"
#include "sweep_report.h"

namespace allocscope::cmd {
namespace {

constexpr absl::string_view kStyle = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em} code,pre{font:12px/1.35 ui-monospace,monospace}
table{border-collapse:collapse;width:100%} th,td{border:1px solid #ccc;padding:3px 6px;
text-align:left;vertical-align:top} th{background:#eee}
tr.clean td.outcome{background:#d8f0d8} tr.handled td.outcome{background:#d8e4f8}
tr.crash td.outcome{background:#f8c8c8} tr.hang td.outcome{background:#f8e0b0}
tr.leak td.outcome,tr.wrong-output td.outcome{background:#f0d0f0}
tr.oom-exit td.outcome{background:#e0e8f0} tr.not-reached td.outcome{background:#e8e8e8}
span.badge{display:inline-block;padding:1px 8px;margin-right:6px;border-radius:8px;background:#eee}
details summary{cursor:pointer} pre{margin:2px 0;white-space:pre-wrap}
#filter label{margin-right:10px}
)";

// Shows the rows whose outcome is ticked and whose text holds the search string.
constexpr absl::string_view kScript = R"(
function allocscopeFilter(){
  var on={};document.querySelectorAll('#filter input[type=checkbox]').forEach(function(c){on[c.value]=c.checked;});
  var q=document.getElementById('q').value.toLowerCase();
  document.querySelectorAll('tr.group').forEach(function(r){
    var show=on[r.dataset.outcome]!==false&&(q===''||r.textContent.toLowerCase().indexOf(q)>=0);
    r.style.display=show?'':'none';});
}
)";

std::string Escape(absl::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&': out.append("&amp;"); break;
      case '<': out.append("&lt;"); break;
      case '>': out.append("&gt;"); break;
      case '"': out.append("&quot;"); break;
      case '\'': out.append("&#x27;"); break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string Details(absl::string_view title, absl::string_view text) {
  if (text.empty()) return "";
  return absl::StrCat("<details><summary>", Escape(title), "</summary><pre>", Escape(text),
                      "</pre></details>");
}

// A stack's frames, one a line: module+offset, function, file:line.
std::string StackText(const Json *stack) {
  if (stack == nullptr || !stack->is_array()) return "";
  std::vector<std::string> lines;
  for (const Json &f : stack->as_array()) {
    std::string line = JsonText(f, "module").empty()
                           ? JsonText(f, "offset")
                           : absl::StrCat(JsonText(f, "module"), "+", JsonText(f, "offset"));
    if (!JsonText(f, "function").empty()) absl::StrAppend(&line, "  ", JsonText(f, "function"));
    if (!JsonText(f, "file").empty()) {
      absl::StrAppend(&line, "  ", JsonText(f, "file"));
      if (const Json *n = f.find("line"); n != nullptr && n->is_int())
        absl::StrAppend(&line, ":", n->as_int());
    }
    lines.push_back(line);
  }
  return absl::StrJoin(lines, "\n");
}

std::string GroupRow(const PointGroup &g) {
  const Json &p = g.first();
  std::vector<std::string> ids;
  for (const Json *q : g.points) ids.push_back(JsonText(*q, "id"));
  std::string outcome = g.outcome;
  if (!JsonText(p, "signal_name").empty())
    absl::StrAppend(&outcome, " (", JsonText(p, "signal_name"), ")");
  std::string details = Details(absl::StrCat(g.points.size(), " points"), absl::StrJoin(ids, " "));
  details += Details("allocation stack", StackText(p.find("stack")));
  details += Details("crash stack", StackText(p.find("crash_stack")));
  if (const Json *bt = p.find("crash_backtrace"); bt != nullptr && bt->is_array()) {
    std::vector<std::string> lines;
    for (const Json &l : bt->as_array()) lines.push_back(l.is_string() ? l.as_string() : "");
    details += Details("crash backtrace (gdb)", absl::StrJoin(lines, "\n"));
  }
  details += Details("stderr", JsonText(p, "stderr"));
  const std::string function = JsonText(p, "function");
  std::string source = JsonText(p, "source");
  if (const std::optional<SourceLine> line = PointSourceLine(p))
    source = absl::StrCat(line->file, ":", line->line);
  const std::string cells[] = {JsonText(p, "callsite").empty() ? "-" : JsonText(p, "callsite"),
                               function.empty() ? "?" : function, source.empty() ? "-" : source};
  std::string tds = absl::StrCat("<td>", g.points.size(), "</td>");
  for (const std::string &c : cells) absl::StrAppend(&tds, "<td><code>", Escape(c), "</code></td>");
  return absl::StrCat("<tr class=\"group ", Escape(g.outcome), "\" data-outcome=\"",
                      Escape(g.outcome), "\"><td class=\"outcome\">", Escape(outcome), "</td>",
                      tds, "<td><code>", Escape(JsonText(p, "replay")), "</code></td><td>",
                      details, "</td></tr>");
}

std::string Number(const Json *v) {
  if (v == nullptr || v->is_null()) return "-";
  return v->Dump();
}

}  // namespace

std::string ReportHtml(const Json &report) {
  std::vector<std::string> command;
  if (const Json *c = report.find("command"); c != nullptr && c->is_array())
    for (const Json &arg : c->as_array()) command.push_back(arg.is_string() ? arg.as_string() : "");
  const Json *summary = report.find("summary");
  std::string badges, boxes;
  if (const Json *counts = summary != nullptr ? summary->find("counts") : nullptr;
      counts != nullptr && counts->is_object()) {
    for (const auto &[name, n] : counts->as_object()) {
      absl::StrAppend(&badges, "<span class=\"badge\">", Escape(name), " ", n.Dump(), "</span>");
      absl::StrAppend(&boxes, "<label><input type=\"checkbox\" value=\"", Escape(name),
                      "\" checked onchange=\"allocscopeFilter()\">", Escape(name), "</label>");
    }
  }
  std::vector<std::string> rows;
  for (const PointGroup &g : GroupPoints(report)) rows.push_back(GroupRow(g));
  const Json *baseline = report.find("baseline");
  const std::string base =
      baseline == nullptr
          ? "-"
          : absl::StrCat("exit status ", Number(baseline->find("exit_status")), " in ",
                         Number(baseline->find("duration")), " s, ",
                         Number(baseline->find("allocations")), " allocations");
  // Coverage: points run of points known, and the allocation calls no point failed.
  std::string coverage;
  if (const Json *c = report.find("coverage"); c != nullptr && c->is_object()) {
    coverage = absl::StrCat("<p>Coverage: ", Number(c->find("points_run")), " of ",
                            Number(c->find("points_known")), " points");
    std::string unreached;
    if (const Json *mods = c->find("allocation_calls"); mods != nullptr && mods->is_array())
      for (const Json &m : mods->as_array()) {
        if (m.find("calls") == nullptr) continue;
        absl::StrAppend(&coverage, "; ", Number(m.find("failed")), " of ",
                        Number(m.find("calls")), " allocation calls in <code>",
                        Escape(JsonText(m, "module")), "</code> failed");
        if (const Json *u = m.find("unreached"); u != nullptr && u->is_array())
          for (const Json &call : u->as_array())
            absl::StrAppend(&unreached, JsonText(call, "callsite"), "  ", JsonText(call, "calls"),
                            "  ", JsonText(call, "caller").empty() ? "?" : JsonText(call, "caller"),
                            "  ", JsonText(call, "source"), "\n");
      }
    absl::StrAppend(&coverage, ".</p>\n",
                    Details("allocation calls no point failed", unreached), "\n");
  }
  const Json *complete = report.find("complete");
  const bool partial = complete != nullptr && complete->is_bool() && !complete->as_bool();
  const std::string title = Escape(ShellJoin(command));
  return absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>allocscope "
      "sweep: ",
      title, "</title>\n<style>", kStyle, "</style><script>", kScript,
      "</script></head><body>\n<h1>allocscope sweep: <code>", title, "</code></h1>\n",
      partial ? "<p><b>Interrupted: the points that finished.</b></p>\n" : "", "<p>", badges,
      "</p>\n<p>Mode <b>", Escape(JsonText(report, "mode")), "</b>, ",
      summary != nullptr ? Number(summary->find("points")) : "-", " points in ",
      summary != nullptr ? Number(summary->find("sweep_seconds")) : "-",
      " s. Baseline: ", Escape(base), ".</p>\n",
      baseline != nullptr ? Details("baseline stderr", JsonText(*baseline, "stderr")) : "",
      coverage,
      "\n<p id=\"filter\">", boxes,
      " <input id=\"q\" placeholder=\"filter\" oninput=\"allocscopeFilter()\"></p>\n"
      "<table><tr><th>outcome</th><th>points</th><th>call site</th><th>function</th>"
      "<th>caller's source line</th><th>replay</th><th>details</th></tr>\n",
      absl::StrJoin(rows, "\n"), "\n</table></body></html>\n");
}

}  // namespace allocscope::cmd
