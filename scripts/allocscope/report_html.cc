// report_html.cc: the sweep's report as one self-contained HTML page (--html): no script,
// no outside resource; backtraces and output fold away in <details>.
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
tr.not-reached td.outcome{background:#e8e8e8}
span.badge{display:inline-block;padding:1px 8px;margin-right:6px;border-radius:8px}
span.clean{background:#d8f0d8} span.handled{background:#d8e4f8} span.crash{background:#f8c8c8}
span.hang{background:#f8e0b0} span.not-reached{background:#e8e8e8}
details summary{cursor:pointer} pre{margin:2px 0;white-space:pre-wrap}
)";

std::string Escape(absl::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '&':
        out.append("&amp;");
        break;
      case '<':
        out.append("&lt;");
        break;
      case '>':
        out.append("&gt;");
        break;
      case '"':
        out.append("&quot;");
        break;
      case '\'':
        out.append("&#x27;");
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string Details(absl::string_view title, absl::string_view text) {
  if (text.empty()) return "";
  return absl::StrCat("<details><summary>", Escape(title), "</summary><pre>", Escape(text),
                      "</pre></details>");
}

std::string Frames(const std::vector<Symbol> &frames) {
  std::vector<std::string> lines;
  for (const Symbol &f : frames) {
    std::vector<std::string> where;
    if (f.function) where.push_back(*f.function);
    if (f.source) where.push_back(*f.source);
    lines.push_back(where.empty() ? f.frame
                                  : absl::StrCat(f.frame, "  ", absl::StrJoin(where, " ")));
  }
  return absl::StrJoin(lines, "\n");
}

std::string Row(const Point &p) {
  std::string details;
  if (!p.injection_frames.empty())
    details += Details("injection backtrace", Frames(p.injection_frames.front()));
  if (p.crash_backtrace)
    details += Details("crash backtrace (gdb)", absl::StrJoin(*p.crash_backtrace, "\n"));
  details += Details("stderr", p.run.stderr_tail);
  const std::string cells[] = {p.label, p.callsite.value_or("-"),
                               p.injections.empty() ? "" : p.injections.front().function,
                               p.function.value_or("?"), p.source.value_or("-")};
  std::string tds;
  for (const std::string &c : cells) absl::StrAppend(&tds, "<td><code>", Escape(c), "</code></td>");
  return absl::StrCat("<tr class=\"", Escape(OutcomeName(p.outcome)), "\">", tds,
                      "<td class=\"outcome\">", Escape(OutcomeText(p)), "</td><td>", details,
                      "</td></tr>");
}

}  // namespace

std::string ReportHtml(const Report &report) {
  const Summary &s = report.summary;
  std::string badges;
  for (const Outcome o : kOutcomes)
    absl::StrAppend(&badges, "<span class=\"badge ", Escape(OutcomeName(o)), "\">",
                    Escape(OutcomeName(o)), " ", s.counts[static_cast<int>(o)], "</span>");
  const Baseline &b = report.baseline;
  const std::string base =
      absl::StrFormat("exit status %s in %.15g s, %d call sites, %s allocations",
                      b.run.exit.exit_status ? absl::StrCat(*b.run.exit.exit_status) : "-",
                      RoundSeconds(b.run.exit.duration, 4), b.sites.size(),
                      b.allocations ? absl::StrCat(*b.allocations) : "?");
  std::vector<std::string> rows;
  for (const Point &p : report.points) rows.push_back(Row(p));
  const std::string command = Escape(ShellJoin(report.command));
  return absl::StrCat(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>allocscope "
      "sweep: ",
      command, "</title>\n<style>", kStyle, "</style></head><body>\n<h1>allocscope sweep: <code>",
      command, "</code></h1>\n<p>", badges, "</p>\n<p>Mode <b>", Escape(report.mode), "</b>, ",
      s.points, " points in ", absl::StrFormat("%.15g", s.sweep_seconds), " s (",
      s.runs_per_second ? absl::StrFormat("%.15g", *s.runs_per_second) : "-", " runs/s), jobs ",
      report.jobs, ",\ntimeout ", absl::StrFormat("%.15g", report.timeout),
      " s. Baseline: ", Escape(base), ".</p>\n", Details("baseline stderr", b.run.stderr_tail),
      "\n<table><tr><th>point</th><th>call site</th><th>allocator</th><th>function</th>"
      "<th>source</th>\n<th>outcome</th><th>details</th></tr>\n",
      absl::StrJoin(rows, "\n"), "\n</table></body></html>\n");
}

}  // namespace allocscope::cmd
