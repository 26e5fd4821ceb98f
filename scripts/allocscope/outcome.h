// outcome.h: what failing one point did to the program, judged against the baseline (the
// same command with nothing failed), from the run's exit, its full stdout and stderr, and
// the fault.events records of every process in its tree (policy/fault_events.h).
//
// The classes, most serious first (a point gets the first that applies):
//   hang         the run passed --timeout (each thread's stack is taken from the live
//                processes first: policy/fault_events.h, stacks_signal);
//   not-reached  no failure was injected;
//   crash        a fatal signal ended some process of the tree (its crash record, or the
//                top process's signal when it wrote none), other than an oom-exit abort;
//                `process` says which (pid, program, depth below the top process);
//   oom-exit     the program ended itself on purpose right after the injected failure.
//                The rule: the process that got the failure ended by abort() (SIGABRT)
//                or exit with a non-zero status, and the stack that ended it still holds
//                the failing call's caller chain: the injection's return address k
//                frames out (k = 1: the allocator's caller was still running; k = 2: its
//                caller), with every frame outward of it the same, where frame k is not
//                one of the two outermost (so "main was still running" alone does not
//                count); and no process crashed. An abort whose stderr shows a failed
//                assert ("Assertion `") is a crash: an assert is a bug, not a policy;
//   wrong-output the top process's exit status is the baseline's but stdout differs
//                (compared in full; --ignore-output skips this);
//   leak         the bytes of blocks a process allocated after the injection and still
//                held at exit (policy/leak_track.h) exceed what the baseline's process
//                of the same program held at exit of all it allocated (fault.track_all):
//                a failed path may leave no more live than a whole normal run does;
//   handled      another exit status, or stderr differs;
//   clean        the same exit status, stdout and stderr.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "json.h"
#include "records.h"
#include "subprocess.h"
#include "symbolize.h"

namespace allocscope::cmd {

enum class Outcome {
  kClean,
  kHandled,
  kOomExit,
  kWrongOutput,
  kLeak,
  kCrash,
  kHang,
  kNotReached,
};
inline constexpr int kOutcomeCount = 8;
inline constexpr Outcome kOutcomes[kOutcomeCount] = {
    Outcome::kClean, Outcome::kHandled, Outcome::kOomExit, Outcome::kWrongOutput,
    Outcome::kLeak,  Outcome::kCrash,   Outcome::kHang,    Outcome::kNotReached};
absl::string_view OutcomeName(Outcome outcome);

// How one process of a run's tree fared, from its records.
struct ProcessFate {
  int64_t pid = 0, ppid = 0;
  std::string exe;
  int depth = 0;                  // 0: the top process, 1: its child, ...
  std::string end;                // "exit", "_exit", "_Exit", "crash", "unknown"
  std::optional<int64_t> status;  // exit status
  std::optional<int64_t> signal;  // crash
  int64_t injected = 0;
  std::optional<int64_t> failed_path_bytes;
};

// A hung process's thread, as its stacks record gave it.
struct ThreadStack {
  int64_t pid = 0, tid = 0;
  std::string exe;
  std::vector<std::string> frames;
  std::vector<Symbol> symbols;  // filled by symbolisation
};

// Why a point got its class, and the evidence.
struct Findings {
  std::string reason;                   // one line: "SIGSEGV in pid 12 (cat, a grandchild)"
  std::optional<std::string> stack;     // the injected stack's hash
  std::optional<ProcessFate> process;   // crash, oom-exit, leak: the process concerned
  std::vector<std::string> crash_stack;  // crash/oom-exit: the ending stack, module+offset
  std::vector<Symbol> crash_symbols;     // filled by symbolisation
  std::optional<int64_t> leak_bytes;    // failed-path bytes beyond the baseline's
  std::optional<int64_t> failed_path_bytes, baseline_live_bytes;
  bool stdout_differs = false, stderr_differs = false;
  std::vector<ProcessFate> processes;
  std::vector<ThreadStack> threads;  // hang
};

// A run as the classifier sees it.
struct RunEvidence {
  RunExit exit;
  std::string stdout_text, stderr_text;  // in full
  std::vector<Injection> injections;
  std::vector<EventRecord> events;
};

// The class of a point run against the baseline run, and why.
Outcome Classify(const RunEvidence &run, const RunEvidence &baseline, bool ignore_output,
                 Findings *findings);

// The oom-exit stack rule above: does `ending` (frames from the innermost out) still hold
// the caller chain of the injection's backtrace?
bool EndsInCallerChain(const std::vector<std::string> &ending,
                       const std::vector<std::string> &injection);

// The findings as JSON members of a point (crash_stack, process, leak_bytes, threads, ...).
void AddFindingsJson(Json *point, const Findings &findings);

}  // namespace allocscope::cmd
