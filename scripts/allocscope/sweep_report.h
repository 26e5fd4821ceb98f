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

struct Report {
  std::vector<std::string> command;
  std::string mode;
  std::string library;
  std::string conf;
  int64_t jobs = 0;
  double timeout = 0;
  std::optional<int64_t> max_points;
  Baseline baseline;
  std::vector<Point> points;
  Summary summary;
};

// "handled (exit 3)", "crash (SIGSEGV)", or the outcome's name.
std::string OutcomeText(const Point &point);

// The points as an aligned table: point, call site, function, source, outcome.
std::string ReportTable(const std::vector<Point> &points);

// "14 points: 0 clean, 13 handled, 1 crash, 0 hang, 0 not-reached; 0.15 s, 93 runs/s"
std::string SummaryText(const Summary &summary);

Json ReportJson(const Report &report);
std::string ReportHtml(const Report &report);

// Writes `text` to `path` (created or truncated).
absl::Status WriteTextFile(const std::string &path, absl::string_view text);

}  // namespace allocscope::cmd
