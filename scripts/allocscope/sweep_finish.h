// sweep_finish.h: what a sweep does with its report once it has one: prints the grouped
// table, the counts and the coverage, writes the files the flags ask for (--json,
// --html, --junit, --sarif, --write-known), and turns what it found into the exit
// status (--known). `sweep merge` ends the same way with the merged report.
#pragma once

#include <string>
#include <vector>

#include "json.h"

namespace allocscope::cmd {

// The files a report goes to ("" for none) and the known-failures file.
struct ReportOutputs {
  std::string json, html, junit, sarif, write_known, known;
};

// Prints and writes the report; the exit status: 130 when interrupted, 2 when a file
// cannot be written or --known read, 1 when a failing point is not in --known, else 0.
int FinishReport(const Json &report, const ReportOutputs &outputs, bool interrupted);

// `allocscope sweep merge OUT.json IN.json...`: the merged report written to OUT.json,
// then FinishReport.
int MergeMain(const std::vector<std::string> &args, const ReportOutputs &outputs);

}  // namespace allocscope::cmd
