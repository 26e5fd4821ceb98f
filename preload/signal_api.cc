// signal_api.cc: sigaction and signal, so that a sweep run's crash handlers stay first.
//
// With fault.events the preload handles SIGSEGV, SIGBUS, SIGABRT, SIGFPE and SIGILL to
// write the crash record (policy/events.h). A program that installs its own handler for
// one of them afterwards (Python's faulthandler, a server's crash reporter) would silence
// the record; instead its handler is kept as the one ours chains to after writing it, and
// the program sees the answers it would have had. Every other call, and every call while
// fault.events is off, is glibc's. glibc's own signal() calls its internal sigaction, not
// this one, so signal is wrapped too.
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>

#include "compiler.h"
#include "events.h"

namespace {

using sigaction_fn = int (*)(int, const struct sigaction *, struct sigaction *) noexcept;

sigaction_fn real_sigaction() {
  static const sigaction_fn real =
      reinterpret_cast<sigaction_fn>(dlsym(RTLD_NEXT, "sigaction"));
  return real;
}

// Resolved before anything can call ours: a signal handler's first sigaction must not
// be what runs dlsym (the loader's lock).
__attribute__((constructor)) void resolve_sigaction() { real_sigaction(); }

}  // namespace

AS_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old) noexcept {
  if (allocscope::events::program_sigaction(sig, act, old)) return 0;
  return real_sigaction()(sig, act, old);
}

// glibc's signal(): BSD semantics (SA_RESTART, the handler stays installed).
AS_EXPORT sighandler_t signal(int sig, sighandler_t handler) noexcept {
  struct sigaction act = {}, old = {};
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;
  sigemptyset(&act.sa_mask);
  sigaddset(&act.sa_mask, sig);
  if (sigaction(sig, &act, &old) < 0) return SIG_ERR;
  return old.sa_handler;
}
