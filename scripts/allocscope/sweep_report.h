// sweep_report.h: what a sweep found, and its writers: the table printed on stdout, the JSON
// report (--json) and the self-contained HTML page (--html). The JSON's keys are the
// contract scripts and tests read (tests/programs/sweep_test.py).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "json.h"
#include "outcome.h"
#include "records.h"
#include "subprocess.h"
#include "symbolize.h"

namespace allocscope::cmd {

// What failing one point did to the program, judged against the baseline: Outcome, its
// classes and the Findings behind each are outcome.h's.

// "SIGSEGV", or "signal 99" for a number without a name.
std::string SignalName(int signal);

// One run of the program: how it ended and the end of what it printed.
struct RunRecord {
  RunExit exit;
  std::string stdout_tail;  // the last kOutputTail bytes, as UTF-8
  std::string stderr_tail;
};
inline constexpr size_t kOutputTail = 4000;

// A call site the baseline recorded.
struct Site {
  std::string callsite;
  std::string module;
  uint64_t count = 0;
  std::optional<std::string> function;
  std::optional<std::string> source;
};

struct Baseline {
  RunRecord run;
  bool recorded = false;  // some process wrote a fault.record
  std::vector<Site> sites;
  // The most eligible allocations any one process made; unknown without records.
  std::optional<uint64_t> allocations;
};

struct Point {
  int64_t key = 0;                 // the n of nth, or the site's number
  std::string label;               // "nth 7", "site 3"
  std::vector<std::string> fault;  // the fault.* pairs that select it
  Outcome outcome = Outcome::kNotReached;
  std::optional<std::string> callsite;  // the failed allocation's caller
  std::vector<Injection> injections;
  RunRecord run;
  // Filled in by symbolisation: the call site's function, line and inlining chain, and
  // the first frames of each injection's backtrace.
  std::optional<std::string> function;
  std::optional<std::string> source;
  std::vector<SourcePlace> inlined;
  std::vector<std::vector<Symbol>> injection_frames;
  std::optional<std::vector<std::string>> crash_backtrace;  // gdb's "#N" lines (--gdb)
  Findings findings;  // why the outcome, the crash stack and process, leak bytes, threads
};

// Seconds rounded to `digits` decimals: how the report shows durations (a run's to
// 0.1 ms, the sweep's to 1 ms).
double RoundSeconds(absl::Duration duration, int digits);

struct Summary {
  int64_t points = 0;
  int64_t counts[kOutcomeCount] = {};
  int64_t runs = 0;                       // runs of the program, the baseline's included
  double sweep_seconds = 0;               // the points' wall time (ms)
  std::optional<double> runs_per_second;  // points per second, to 0.01
  std::optional<int> baseline_exit_status;
  double baseline_seconds = 0;
};

// The JSON report's "schema": raised whenever a field changes meaning or goes away
// (README.md, "The sweep's JSON report", documents each field of this version).
inline constexpr int kReportSchema = 2;

// How each run saw the starting working directory (--workdir-template, --shared-cwd).
struct Isolation {
  std::string kind = "shared";  // "copy" (of cwd), "template" (of --workdir-template), "shared"
  std::string source;           // the directory copied or shared
  uint64_t bytes = 0;           // what one copy holds
};

// What part of the points this sweep ran (--shard, --sample, --resume).
struct Selection {
  std::optional<int64_t> shard_index, shard_count;  // --shard K/N
  std::optional<int64_t> sample, seed;              // --sample N --seed S
  std::optional<std::string> resumed_from;          // --resume REPORT.json
  int64_t resumed_points = 0;                       // points taken from it, not run again
};

struct Report {
  std::vector<std::string> command;
  std::string allocscope;  // this command's path, for the replay lines
  std::string program_module;  // the executable's module name (its real path's file name)
  std::string cwd;         // where the sweep started
  std::optional<std::string> stdin_file;  // what every run read as stdin (replay lines)
  bool complete = true;    // false: interrupted, the points are those that finished
  Isolation isolation;
  Selection selection;
  std::optional<Json> coverage;  // coverage.cc's analysis
  std::vector<Json> resumed;     // points of --resume's report, as they were
  std::vector<std::string> notes;  // what a reader should know (modules without debug info)

  std::string mode;
  std::string library;
  std::string conf;
  bool ignore_output = false;                // --ignore-output: outcomes by status alone
  int64_t jobs = 0;
  double timeout = 0;
  std::optional<int64_t> max_points;
  Baseline baseline;
  std::vector<Point> points;
  Summary summary;
};

// The string member `key` of a JSON object, or "" (absent, null, or not a string).
std::string JsonText(const Json &object, absl::string_view key);

// A point's stable id, from the mode and the fault.* pairs that select it (never the run
// order): "nth-7" for fault.nth:7 alone, else MODE-<16 hex digits of their FNV-1a hash>.
std::string PointId(absl::string_view mode, const std::vector<std::string> &fault);

// The shell command that reproduces one point alone: `cd CWD && allocscope run --conf
// PAIRS -- CMD < STDIN`, stdin from the same file as in the sweep.
std::string ReplayCommand(const Report &report, const std::vector<std::string> &fault);

// The outcomes a CI gate fails on: crash, hang, leak, wrong-output (by name, so the
// classes outcome.h adds count as soon as they exist).
bool IsFailingOutcome(absl::string_view outcome);

// Points of a JSON report that share an outcome and a place: a crash's stack (its
// crash_stack frames, else its gdb backtrace's functions, else its call site), or any
// other outcome's failing call site. Failing groups first (crashes, then hangs, leaks,
// wrong output), then by size; within a group, points in report order.
struct PointGroup {
  std::string outcome;
  std::string key;                  // the place, as text
  std::vector<const Json *> points;
  const Json &first() const { return *points.front(); }
};
std::vector<PointGroup> GroupPoints(const Json &report);

// The source line of a point's failing call: its "caller" frame's file and line (the
// program's own frame nearest the allocation), else its "source"; nullopt when unknown.
struct SourceLine {
  std::string file;
  int64_t line = 0;
};
std::optional<SourceLine> PointSourceLine(const Json &point);

// The groups as an aligned table, failing groups first: outcome, points, first id, call
// site, function, source.
std::string GroupTable(const Json &report);

// JUnit XML (a testcase per group, a <failure> for failing ones) and SARIF 2.1.0 (a
// result per failing group) of a JSON report.
std::string ReportJunit(const Json &report);
std::string ReportSarif(const Json &report);

Json ReportJson(const Report &report);
// {"clean": N, ...} over a JSON array of points, every outcome class named.
Json CountOutcomes(const Json &points);
// The page, from the JSON report (so merged and resumed reports render the same way).
std::string ReportHtml(const Json &report);

// Writes `text` to `path` (created or truncated).
absl::Status WriteTextFile(const std::string &path, absl::string_view text);

}  // namespace allocscope::cmd
