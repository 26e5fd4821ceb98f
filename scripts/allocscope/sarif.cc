// sarif.cc: the sweep as SARIF 2.1.0 (--sarif), the format code-scanning services read:
// one result per failing group of points (GroupPoints), located at the source line of the
// failing allocation's caller where debug info names it, else at the module. Rule ids are
// the outcome classes.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "sweep_report.h"
#include "version.h"

namespace allocscope::cmd {
namespace {


constexpr absl::string_view kRules[][2] = {
    {"crash", "A failed allocation makes the program die of a signal."},
    {"hang", "A failed allocation makes the program run past the sweep's timeout."},
    {"leak", "A failed allocation's error path leaves memory allocated."},
    {"wrong-output", "A failed allocation changes the output while the exit status stays."},
};

// A SARIF artifact URI for a source file: absolute paths as file:// URIs.
std::string FileUri(const std::string &file) {
  return absl::StartsWith(file, "/") ? absl::StrCat("file://", file) : file;
}

}  // namespace

std::string ReportSarif(const Json &report) {
  Json rules{Json::Array{}};
  for (const auto &rule : kRules)
    rules.push(Json::Object{{"id", rule[0]},
                            {"shortDescription", Json::Object{{"text", rule[1]}}}});
  Json results{Json::Array{}};
  for (const PointGroup &g : GroupPoints(report)) {
    if (!IsFailingOutcome(g.outcome)) continue;
    const Json &p = g.first();
    Json location{Json::Object{}};
    if (const std::optional<SourceLine> line = PointSourceLine(p)) {
      location.set("physicalLocation",
                   Json::Object{{"artifactLocation", Json::Object{{"uri", FileUri(line->file)}}},
                                {"region", Json::Object{{"startLine", line->line}}}});
    } else {
      // No debug info: the call site as a logical location, module+offset.
      const std::string callsite = JsonText(p, "callsite");
      location.set("logicalLocations",
                   Json::Array{Json::Object{{"fullyQualifiedName",
                                             callsite.empty() ? "?" : callsite}}});
    }
    const std::string function = JsonText(p, "function");
    const std::string signal = JsonText(p, "signal_name");
    std::string message = absl::StrCat(
        g.outcome, signal.empty() ? "" : absl::StrCat(" (", signal, ")"),
        " when the allocation called from ", function.empty() ? JsonText(p, "callsite") : function,
        " fails; ", g.points.size(), g.points.size() == 1 ? " point" : " points",
        ", reproduce with: ", JsonText(p, "replay"));
    Json ids{Json::Array{}};
    for (const Json *q : g.points) ids.push(JsonText(*q, "id"));
    results.push(Json::Object{
        {"ruleId", g.outcome},
        {"level", "error"},
        {"message", Json::Object{{"text", message}}},
        {"locations", Json::Array{std::move(location)}},
        {"partialFingerprints", Json::Object{{"allocscopeGroup/v1", g.key}}},
        {"properties", Json::Object{{"points", std::move(ids)}, {"replay", JsonText(p, "replay")}}}});
  }
  Json sarif = Json::Object{
      {"$schema", "https://json.schemastore.org/sarif-2.1.0.json"},
      {"version", "2.1.0"},
      {"runs", Json::Array{Json::Object{
                   {"tool", Json::Object{{"driver",
                                          Json::Object{{"name", "allocscope"},
                                                       {"version", kVersion},
                                                       {"rules", std::move(rules)}}}}},
                   {"results", std::move(results)}}}}};
  return sarif.Dump(1) + "\n";
}

}  // namespace allocscope::cmd
