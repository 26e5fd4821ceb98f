// ctl.cc: `allocscope ctl PID KEY:VALUE,...`: changes a running process's configuration
// through the request slot of its live page (policy/live_page_format.h), applied at the
// process's next event (an allocation that reaches the preload's slow path or a 64 KiB
// activity check), with the process's own parser: its error lines come back here.
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "exit_status.h"
#include "flag_types.h"
#include "live_files.h"
#include "options.h"
#include "verbs.h"

ABSL_FLAG(allocscope::cmd::Seconds, ctl_timeout, {absl::Seconds(5)},
          "seconds to wait for the process to pick the request up");

namespace allocscope::cmd {
namespace {

int CtlMain(std::vector<std::string> operands) {
  if (operands.size() != 2) {
    Complain("ctl", "expected PID and KEY:VALUE,... (allocscope ctl [--timeout S] PID "
                    "KEY:VALUE,...)");
    return kExitUsage;
  }
  absl::StatusOr<pid_t> pid = ParsePid(operands[0]);
  if (!pid.ok()) {
    Complain("ctl", pid.status().message());
    return kExitUsage;
  }
  const std::string &conf = operands[1];
  // The process's parser, here first: a malformed pair changes nothing (the process would
  // apply the good pairs and refuse only the bad one).
  std::string errors;
  if (check_config(conf, "allocscope ctl", &errors) != 0) {
    fputs(errors.c_str(), stderr);  // each line names its source: "allocscope ctl: ..."
    return kExitRefused;
  }
  if (conf.size() >= sizeof(live::Page::request)) {
    Complain("ctl", absl::StrCat("the settings are ", conf.size(), " bytes; at most ",
                                 sizeof(live::Page::request) - 1, " fit"));
    return kExitUsage;
  }
  absl::StatusOr<std::unique_ptr<MappedPage>> mapped = OpenLivePage(*pid);
  if (!mapped.ok()) {
    Complain("ctl", mapped.status().message());
    return kExitRefused;
  }
  live::Page &page = (*mapped)->page();
  // One ctl at a time per process.
  while (flock((*mapped)->fd(), LOCK_EX) != 0 && errno == EINTR) {
  }
  if (page.request_state.load() != live::kIdle) page.request_state.store(live::kIdle);  // a ctl that died
  memset(page.request, 0, sizeof(page.request));
  memcpy(page.request, conf.data(), conf.size());
  page.request_state.store(live::kPosted, std::memory_order_release);
  const absl::Time deadline = absl::Now() + absl::GetFlag(FLAGS_ctl_timeout).value;
  for (;;) {
    const uint32_t state = page.request_state.load(std::memory_order_acquire);
    if (state == live::kDone) break;
    if (state == live::kPosted && absl::Now() >= deadline) {
      uint32_t posted = live::kPosted;
      if (page.request_state.compare_exchange_strong(posted, live::kIdle)) {
        Complain("ctl", absl::StrCat("process ", *pid, " did not pick the request up within ",
                                     absl::FormatDuration(absl::GetFlag(FLAGS_ctl_timeout).value),
                                     " (it applies requests when it allocates; an idle process "
                                     "does not): withdrawn, nothing changed"));
        return kExitNotPickedUp;
      }
      continue;
    }
    if (state == live::kTaken && absl::Now() >= deadline + absl::Seconds(10)) {
      Complain("ctl", absl::StrCat("process ", *pid, " took the request but did not answer"));
      return kExitRefused;
    }
    if (kill(*pid, 0) != 0 && errno == ESRCH) {
      Complain("ctl", absl::StrCat("process ", *pid, " ended before answering"));
      return kExitRefused;
    }
    usleep(2000);
  }
  const int bad = page.request_bad.load();
  const std::string reply(page.reply, strnlen(page.reply, sizeof(page.reply)));
  page.request_state.store(live::kIdle, std::memory_order_release);
  if (bad != 0) {  // the process's own lines, which name their source ("allocscope ctl")
    fprintf(stderr, "%s\n", reply.empty() ? "allocscope ctl: the process refused the settings"
                                          : reply.c_str());
    return kExitRefused;
  }
  printf("allocscope ctl: process %d applied %s\n", static_cast<int>(*pid), conf.c_str());
  return kExitOk;
}

}  // namespace

const Verb kCtlVerb = {
    "ctl",
    "change a running process's settings (limit, policy, fault.*...)",
    "[--timeout S] PID KEY:VALUE,...",
    R"(Applies KEY:VALUE,... (ALLOCSCOPE_CONF's grammar and keys) to process PID,
running under allocscope with control:true (allocscope run turns it on). The
pairs are checked here first with the preload's own parser: a malformed one is
reported and nothing is sent. The process applies the request at its next event
(an allocation that reaches allocscope's slow path, or every 64 KiB a thread
allocates or frees): no thread and no signal of allocscope's runs in it. What
the process refuses (a file that does not open, a cgroup it cannot read) comes
back as its one-line message. For example:
  allocscope ctl 4242 limit:512M
  allocscope ctl 4242 fault.probability:1,fault.times:3
  allocscope ctl 4242 profile:dump

Exit status: 0 applied; 1 refused (by the check here or by the process), or the
process cannot be steered (not running, another user's, not under allocscope
with control:true, a page of another version); 3 the process did not pick the
request up within --timeout seconds (default 5): it was withdrawn, nothing
changed.)",
    {{"timeout", "S", "ctl_timeout"}},
    true,
    CtlMain,
    "PID KEY:VALUE,...",
};

}  // namespace allocscope::cmd
