// exit_signals.cc: the preload's half of exit_signals.h: the handler that writes the stats
// when SIGTERM, SIGINT or SIGHUP would end the process, and the sigaction()/signal()
// wrappers that keep the program seeing the dispositions it would see without us (why
// they must exist is in exit_signals.h). The same two wrappers keep a sweep run's crash
// handlers first (SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL with fault.events,
// fault_events.h): a handler the program installs later becomes the one ours chains to.
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <atomic>

#include "compiler.h"
#include "exit_signals.h"
#include "fault_events.h"
#include "lifecycle.h"
#include "stats_json.h"

namespace allocscope {
namespace exit_signals {
namespace {

using SigactionFn = int (*)(int, const struct sigaction *, struct sigaction *) noexcept;

constexpr int kSignals[] = {SIGTERM, SIGINT, SIGHUP};
constexpr int kCount = 3;

// glibc's sigaction, found before anything can call ours (the constructor below).
std::atomic<SigactionFn> g_real{nullptr};
SigactionFn real() {
  SigactionFn fn = g_real.load(std::memory_order_acquire);
  if (fn == nullptr) {
    fn = reinterpret_cast<SigactionFn>(dlsym(RTLD_NEXT, "sigaction"));
    g_real.store(fn, std::memory_order_release);
  }
  return fn;
}
__attribute__((constructor)) void resolve_real() { real(); }

// Per signal: our handler is installed, standing in for SIG_DFL; and what the program
// last asked for with SIG_DFL (its flags and mask), which is what it reads back.
std::atomic<bool> g_standing_in[kCount];
struct sigaction g_program_default[kCount];
std::atomic<bool> g_ever_armed{false};

int index_of(int sig) {
  for (int i = 0; i < kCount; ++i)
    if (kSignals[i] == sig) return i;
  return -1;
}

void handler(int sig);

struct sigaction ours() {
  struct sigaction act;
  memset(&act, 0, sizeof(act));
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;
  // The other two wait while one is handled: one write of the stats, then the death.
  sigemptyset(&act.sa_mask);
  for (int s : kSignals) sigaddset(&act.sa_mask, s);
  return act;
}

// Writes the stats (once), then dies of `sig` as the default action would have made it.
void handler(int sig) {
  const int saved_errno = errno;
  static std::atomic<bool> written{false};
  if (!written.exchange(true)) {
    write_exit_stats(sig);
    run_writers(sig);
    // What the process gives back at exit (a tree budget's grant): the tree would reap it
    // after the death anyway; now is sooner. Async-signal-safe (lifecycle.h).
    lifecycle::stop();
  }
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  const int i = index_of(sig);
  if (i >= 0) g_standing_in[i].store(false);
  real()(sig, &dfl, nullptr);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  raise(sig);
  errno = saved_errno;  // not reached: the default action of these three ends the process
}

}  // namespace

void arm() {
  // The init of a PID namespace (a container's first process) never gets a signal whose
  // disposition is SIG_DFL: catching it would change what it does.
  if (!wanted() || real() == nullptr || getpid() == 1) return;
  g_ever_armed.store(true);
  for (int i = 0; i < kCount; ++i) {
    if (g_standing_in[i].load()) continue;
    struct sigaction current;
    if (real()(kSignals[i], nullptr, &current) != 0 || current.sa_handler != SIG_DFL) continue;
    const struct sigaction act = ours();
    if (real()(kSignals[i], &act, nullptr) != 0) continue;
    g_program_default[i] = current;
    g_standing_in[i].store(true);
  }
}

}  // namespace exit_signals
}  // namespace allocscope

using allocscope::exit_signals::g_ever_armed;
using allocscope::exit_signals::g_program_default;
using allocscope::exit_signals::g_standing_in;

// For SIGTERM, SIGINT and SIGHUP once armed: a program that sets SIG_DFL gets our
// stand-in (and reads back what it set); any other disposition is installed as given.
// Everything else goes straight to glibc.
AS_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old) noexcept {
  using namespace allocscope::exit_signals;
  if (allocscope::fault_events::program_sigaction(sig, act, old)) return 0;
  const int i = index_of(sig);
  if (i < 0 || !g_ever_armed.load(std::memory_order_relaxed)) return real()(sig, act, old);
  const bool was_ours = g_standing_in[i].load();
  const struct sigaction reported = g_program_default[i];
  int result;
  if (act != nullptr && act->sa_handler == SIG_DFL && wanted()) {
    const struct sigaction requested = *act;  // act may be old too
    const struct sigaction stand_in = ours();
    result = real()(sig, &stand_in, old);
    if (result == 0) {
      g_program_default[i] = requested;
      g_standing_in[i].store(true);
    }
  } else {
    result = real()(sig, act, old);
    if (result == 0 && act != nullptr) g_standing_in[i].store(false);
  }
  if (result == 0 && old != nullptr && was_ours) {
    *old = reported;
    old->sa_handler = SIG_DFL;
  }
  return result;
}

// glibc's signal() calls its internal sigaction, not ours: for the three, the same through
// ours, with BSD semantics as glibc gives them (SA_RESTART, the signal blocked in its
// handler); every other signal (or before anything was armed) goes to glibc's signal, which
// also honours siginterrupt().
AS_EXPORT sighandler_t signal(int sig, sighandler_t handler) noexcept {
  using SignalFn = sighandler_t (*)(int, sighandler_t) noexcept;
  static std::atomic<SignalFn> real_signal{nullptr};
  const bool exit_signal = allocscope::exit_signals::index_of(sig) >= 0 && g_ever_armed.load();
  if (!exit_signal && !allocscope::fault_events::holds_signal(sig)) {
    SignalFn fn = real_signal.load(std::memory_order_acquire);
    if (fn == nullptr) {
      fn = reinterpret_cast<SignalFn>(dlsym(RTLD_NEXT, "signal"));
      real_signal.store(fn, std::memory_order_release);
    }
    if (fn != nullptr) return fn(sig, handler);
  }
  struct sigaction act, old;
  memset(&act, 0, sizeof(act));
  act.sa_handler = handler;
  sigemptyset(&act.sa_mask);
  if (sig > 0 && sig < NSIG) sigaddset(&act.sa_mask, sig);
  act.sa_flags = SA_RESTART;
  if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}
