// stats_verb.cc: `allocscope stats PID`: a running process's stats, from its live page.
#include <time.h>

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "exit_status.h"
#include "live_files.h"
#include "verbs.h"

ABSL_FLAG(bool, stats_json, false, "print the stats JSON instead of the summary");

namespace allocscope::cmd {
namespace {

int StatsMain(std::vector<std::string> operands) {
  if (operands.size() != 1) {
    Complain("stats", operands.empty() ? "no PID given (allocscope stats [--json] PID)"
                                       : "one PID, and flags before it (allocscope stats [--json] PID)");
    return kExitUsage;
  }
  absl::StatusOr<pid_t> pid = ParsePid(operands[0]);
  if (!pid.ok()) {
    Complain("stats", pid.status().message());
    return kExitUsage;
  }
  absl::StatusOr<std::unique_ptr<MappedPage>> page = OpenLivePage(*pid);
  if (!page.ok()) {
    Complain("stats", page.status().message());
    return kExitRefused;
  }
  const std::string text = absl::GetFlag(FLAGS_stats_json) ? (*page)->Json() : (*page)->Summary();
  if (text.empty()) {
    Complain("stats", absl::StrCat("process ", *pid,
                                    " has not written its stats yet (it does at its first "
                                    "allocation event after start)"));
    return kExitRefused;
  }
  if (absl::GetFlag(FLAGS_stats_json)) {
    printf("%s\n", text.c_str());
    return kExitOk;
  }
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  const uint64_t now = static_cast<uint64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
  const uint64_t updated = (*page)->page().updated_unix_ms.load();
  printf("allocscope: %s\nallocscope:   as of     %.1f s ago (the process refreshes its page "
         "as it allocates)\n",
         text.c_str(), now > updated ? static_cast<double>(now - updated) / 1000 : 0.0);
  return kExitOk;
}

}  // namespace

const Verb kStatsVerb = {
    "stats",
    "print a running process's stats (summary, or --json)",
    "[--json] PID",
    R"(Prints the stats of process PID, running under allocscope with control:true:
the summary stats_print:summary prints at exit (limit, peak, charge now,
failures by policy and their top call sites, reclaim, waits, regions,
reserves), or with --json the stats JSON. The process refreshes them as it
allocates (every 200 ms at most); the summary says how old they are.

Exit status 1, with one line saying why, when PID is not running, is another
user's, is not under allocscope with control:true, or has a live page of a
version this allocscope does not read.)",
    {{"json", "", "stats_json"}},
    true,
    StatsMain,
    "PID",
};

}  // namespace allocscope::cmd
