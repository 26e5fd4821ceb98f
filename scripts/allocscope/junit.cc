// junit.cc: the sweep as JUnit XML (--junit), for CI systems that show test results: one
// testcase per group of points (GroupPoints), failing groups with a <failure> holding the
// replay command, the others passing. Every point would drown a CI page in thousands of
// rows that say the same thing.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "quote.h"
#include "sweep_report.h"

namespace allocscope::cmd {
namespace {


// Text for an XML attribute or element. Characters XML 1.0 forbids (most control
// characters, which a program's output may hold) become U+FFFD.
std::string Xml(absl::string_view text) {
  std::string out;
  for (const char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if (u < 0x20 && c != '\n' && c != '\t' && c != '\r')
          out += "\xEF\xBF\xBD";
        else
          out.push_back(c);
    }
  }
  return out;
}

}  // namespace

std::string ReportJunit(const Json &report) {
  const std::vector<PointGroup> groups = GroupPoints(report);
  size_t failures = 0;
  for (const PointGroup &g : groups) failures += IsFailingOutcome(g.outcome) ? 1 : 0;
  std::vector<std::string> command;
  if (const Json *c = report.find("command"); c != nullptr && c->is_array())
    for (const Json &arg : c->as_array()) command.push_back(arg.is_string() ? arg.as_string() : "");
  const std::string suite = absl::StrCat("allocscope sweep: ", ShellJoin(command));
  std::string out = absl::StrCat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"", Xml(suite),
      "\" tests=\"", groups.size(), "\" failures=\"", failures, "\" errors=\"0\">\n");
  for (const PointGroup &g : groups) {
    const Json &p = g.first();
const std::optional<SourceLine> line = PointSourceLine(p);
    const std::string where =
        line ? absl::StrCat(line->file, ":", line->line) : JsonText(p, "callsite");
    const std::string name = absl::StrCat(g.outcome, " at ", where.empty() ? "?" : where, " (",
                                          g.points.size(), g.points.size() == 1 ? " point" : " points",
                                          ", first ", JsonText(p, "id"), ")");
    absl::StrAppend(&out, "<testcase classname=\"allocscope.sweep.", Xml(g.outcome), "\" name=\"",
                    Xml(name), "\"");
    if (!IsFailingOutcome(g.outcome)) {
      absl::StrAppend(&out, "/>\n");
      continue;
    }
    std::vector<std::string> ids;
    for (const Json *q : g.points) ids.push_back(JsonText(*q, "id"));
    const std::string signal = JsonText(p, "signal_name");
    absl::StrAppend(&out, ">\n<failure type=\"", Xml(g.outcome), "\" message=\"",
                    Xml(absl::StrCat(g.outcome, signal.empty() ? "" : absl::StrCat(" (", signal, ")"),
                                     " when the allocation at ", where.empty() ? "?" : where,
                                     " fails")),
                    "\">", Xml(absl::StrCat("replay: ", JsonText(p, "replay"), "\npoints: ",
                                            absl::StrJoin(ids, " "), "\nstderr:\n",
                                            JsonText(p, "stderr"))),
                    "</failure>\n</testcase>\n");
  }
  absl::StrAppend(&out, "</testsuite>\n</testsuites>\n");
  return out;
}

}  // namespace allocscope::cmd
