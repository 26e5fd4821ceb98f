// top.cc: `allocscope top`: this user's processes running under allocscope with
// control:true (their live pages, live_files.h), one line each, refreshed every second.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "exit_status.h"
#include "live_files.h"
#include "verbs.h"

ABSL_FLAG(bool, once, false, "print the table once and exit (for scripts and tests)");

namespace allocscope::cmd {
namespace {

uint64_t UnixMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

std::string Table() {
  std::string out = absl::StrFormat("%-8s %-16s %10s %10s %10s %10s %8s %9s\n", "PID", "COMMAND",
                                    "LIMIT", "CHARGED", "PEAK", "RSS", "FAILURES", "UPDATED");
  const uint64_t now = UnixMs();
  for (const auto &p : ListLivePages()) {
    const live::Page &page = p->page();
    const uint64_t limit = page.limit.load(), updated = page.updated_unix_ms.load();
    const uint64_t ago = now > updated ? now - updated : 0;
    out += absl::StrFormat(
        "%-8d %-16.16s %10s %10s %10s %10s %8d %7.1fs\n", p->pid(), page.comm,
        limit ? HumanSize(limit) : "none", HumanSize(page.charged.load()),
        HumanSize(page.peak.load()), HumanSize(page.rss.load()), page.failures.load(),
        static_cast<double>(ago) / 1000);
  }
  return out;
}

volatile sig_atomic_t g_stop = 0;

int TopMain(std::vector<std::string>) {
  if (absl::GetFlag(FLAGS_once)) {
    fputs(Table().c_str(), stdout);
    return kExitOk;
  }
  struct sigaction act = {};
  act.sa_handler = [](int) { g_stop = 1; };
  sigaction(SIGINT, &act, nullptr);
  sigaction(SIGTERM, &act, nullptr);
  const bool tty = isatty(STDOUT_FILENO);
  while (!g_stop) {
    const std::string table = Table();
    if (tty) fputs("\033[H\033[2J", stdout);  // home, clear
    fputs(table.c_str(), stdout);
    if (!tty) fputs("\n", stdout);
    fflush(stdout);
    sleep(1);
  }
  return kExitOk;
}

}  // namespace

const Verb kTopVerb = {
    "top",
    "your processes under allocscope: limit, charge, peak, failures",
    "[--once]",
    R"(Lists your processes running under allocscope with control:true (allocscope
run turns it on), one line each: the limit, the bytes charged now, the peak
charge, resident memory, failures so far, and how long ago the process last
refreshed its page (it does so as it allocates: an idle process shows the
values of its last activity). Refreshed every second until ^C; --once prints
the table once. Pages left by processes that have gone (killed with SIGKILL,
ended by _exit) are removed.)",
    {{"once", ""}},
    false,
    TopMain,
};

}  // namespace allocscope::cmd
