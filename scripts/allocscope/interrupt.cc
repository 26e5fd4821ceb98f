// interrupt.cc: see interrupt.h. The watching thread is detached: it lives until the
// process ends, and after Release() it turns a signal into the default action by
// unblocking it in itself and raising it again.
#include "interrupt.h"

#include <pthread.h>
#include <signal.h>

#include <thread>

namespace allocscope::cmd {
namespace {

sigset_t Signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

InterruptWatch::InterruptWatch(std::function<void()> on_signal)
    : state_(std::make_shared<State>()) {
  state_->on_signal = std::move(on_signal);
  const sigset_t set = Signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([state = state_, set] {
    while (true) {
      int sig;
      if (sigwait(&set, &sig) != 0) continue;
      absl::MutexLock lock(&state->mu);
      if (state->released) {
        signal(sig, SIG_DFL);
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, sig);
        pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
        raise(sig);
        continue;
      }
      state->interrupted.store(true);
      state->on_signal();
    }
  }).detach();
}

void InterruptWatch::Release() {
  absl::MutexLock lock(&state_->mu);
  state_->released = true;
}

}  // namespace allocscope::cmd
