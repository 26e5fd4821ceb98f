// sweep_finish.cc: see sweep_finish.h.
#include "sweep_finish.h"

#include <algorithm>
#include <cstdio>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli.h"
#include "exit_status.h"
#include "known.h"
#include "merge.h"
#include "sweep_report.h"

namespace allocscope::cmd {
namespace {

// The one-line summary under the table: the counts of the outcomes found.
std::string CountsLine(const Json &report) {
  const Json *summary = report.find("summary");
  std::vector<std::string> parts;
  if (const Json *counts = summary ? summary->find("counts") : nullptr; counts && counts->is_object())
    for (const auto &[name, n] : counts->as_object())
      if (!n.is_int() || n.as_int() != 0) parts.push_back(absl::StrCat(n.Dump(), " ", name));
  const Json *points = summary ? summary->find("points") : nullptr;
  const Json *seconds = summary ? summary->find("sweep_seconds") : nullptr;
  const Json *rate = summary ? summary->find("runs_per_second") : nullptr;
  return absl::StrCat(points ? points->Dump() : "0", " points: ",
                      parts.empty() ? "none" : absl::StrJoin(parts, ", "), "; ",
                      seconds ? seconds->Dump() : "-", " s, ",
                      rate && !rate->is_null() ? rate->Dump() : "-", " runs/s");
}

}  // namespace

int FinishReport(const Json &report, const ReportOutputs &o, bool interrupted) {
  fputs(GroupTable(report).c_str(), stdout);
  printf("%s\n", CountsLine(report).c_str());
  // A part of the points, said so: a sample or a shard is not the whole program.
  if (const Json *sel = report.find("selection"); sel != nullptr && sel->is_object()) {
    if (const Json *n = sel->find("sample"); n != nullptr && n->is_int())
      printf("a sample: %lld points drawn at random with seed %s\n",
             static_cast<long long>(n->as_int()), sel->find("seed")->Dump().c_str());
    if (const std::string shard = JsonText(*sel, "shard"); !shard.empty())
      printf("shard %s: the points whose id hashes to it\n", shard.c_str());
    if (const std::string from = JsonText(*sel, "resumed_from"); !from.empty())
      printf("resumed: %s points from %s\n", sel->find("resumed_points")->Dump().c_str(),
             from.c_str());
  }
  if (const Json *c = report.find("coverage"); c != nullptr && c->is_object()) {
    const Json *known = c->find("points_known");
    std::string line = absl::StrCat("coverage: ", c->find("points_run")->Dump(), " of ",
                                    known != nullptr && !known->is_null() ? known->Dump() : "?",
                                    " points");
    if (const Json *mods = c->find("allocation_calls"); mods != nullptr && mods->is_array())
      for (const Json &m : mods->as_array())
        if (const Json *calls = m.find("calls"); calls != nullptr && calls->is_int())
          absl::StrAppend(&line, "; ", m.find("failed")->Dump(), " of ", calls->Dump(),
                          " allocation calls in ", JsonText(m, "module"), " failed");
    printf("%s\n", line.c_str());
  }
  fflush(stdout);
  const std::pair<const std::string *, std::string (*)(const Json &)> outputs[] = {
      {&o.html, ReportHtml},
      {&o.junit, ReportJunit},
      {&o.sarif, ReportSarif},
      {&o.write_known, KnownText},
  };
  int status = kExitOk;
  if (!o.json.empty()) {
    if (absl::Status s = WriteTextFile(o.json, report.Dump(1) + "\n"); !s.ok()) {
      Complain("sweep", s.message());
      status = kExitUsage;
    }
  }
  for (const auto &[path, writer] : outputs) {
    if (path->empty()) continue;
    if (absl::Status s = WriteTextFile(*path, writer(report)); !s.ok()) {
      Complain("sweep", s.message());
      status = kExitUsage;
    }
  }
  if (interrupted) {
    fputs("\nallocscope sweep: interrupted; the report holds the points that finished\n", stderr);
    return kExitInterrupted;
  }
  if (status != kExitOk) return status;
  absl::flat_hash_set<std::string> known;
  if (!o.known.empty()) {
    absl::StatusOr<absl::flat_hash_set<std::string>> read = ReadKnown(o.known);
    if (!read.ok()) {
      Complain("sweep", read.status().message());
      return kExitUsage;
    }
    known = *std::move(read);
  }
  const std::vector<std::string> fresh = NewFailures(report, known);
  if (fresh.empty()) return kExitOk;
  std::vector<std::string> shown(fresh.begin(), fresh.begin() + std::min<size_t>(fresh.size(), 10));
  Complain("sweep", absl::StrCat(fresh.size(), " failing point", fresh.size() == 1 ? "" : "s",
                                 o.known.empty() ? "" : " not in --known", ": ",
                                 absl::StrJoin(shown, " "), fresh.size() > shown.size() ? " ..." : ""));
  return 1;
}

int MergeMain(const std::vector<std::string> &args, const ReportOutputs &o) {
  if (args.size() < 2) {
    Complain("sweep", "merge: expected OUT.json IN.json... (allocscope sweep merge OUT IN...)");
    return kExitUsage;
  }
  std::vector<Json> reports;
  const std::vector<std::string> inputs(args.begin() + 1, args.end());
  for (const std::string &path : inputs) {
    absl::StatusOr<Json> r = ReadReport(path);
    if (!r.ok()) {
      Complain("sweep", absl::StrCat("merge: ", r.status().message()));
      return kExitUsage;
    }
    reports.push_back(*std::move(r));
  }
  absl::StatusOr<Json> merged = MergeReports(reports, inputs);
  if (!merged.ok()) {
    Complain("sweep", absl::StrCat("merge: ", merged.status().message()));
    return kExitUsage;
  }
  ReportOutputs outputs = o;
  outputs.json = args[0];  // OUT.json, written like --json
  return FinishReport(*merged, outputs, false);
}

}  // namespace allocscope::cmd
