// exit_signals.cc: see exit_signals.h (the policy's half: names, what is wanted, the
// writers; the handler and the sigaction wrappers are the preload's).
#include "exit_signals.h"

#include <signal.h>

#include <atomic>

#include "options.h"

namespace allocscope {
namespace exit_signals {
namespace {

std::atomic<void (*)(int)> g_writers[kWriters];

}  // namespace

const char *name(int sig) {
  switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
  }
  return "signal";
}

bool wanted() {
  return g_config.stats_print.load() != 0 || g_config.stats_file[0] != '\0' ||
         g_config.control.load() || g_config.timeline_file[0] != '\0';
}

void on_exit_signal(void (*writer)(int)) {
  for (auto &slot : g_writers) {
    void (*expected)(int) = nullptr;
    if (slot.load() == writer || slot.compare_exchange_strong(expected, writer)) return;
  }
}

void run_writers(int sig) {
  for (auto &slot : g_writers)
    if (void (*writer)(int) = slot.load()) writer(sig);
}

}  // namespace exit_signals
}  // namespace allocscope
