// startup.cc: the preload's constructor and destructor (policy/lifecycle.h does the
// start-up itself; foreign.h checks that the preload really serves the process; the exit
// stats), and the dlopen and dlclose wrappers.
#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <stdlib.h>

#include <atomic>

#include "backend.h"
#include "callsite.h"
#include "fault.h"
#include "fault_events.h"
#include "foreign.h"
#include "lifecycle.h"
#include "live_page.h"
#include "observe.h"
#include "report.h"
#include "stats_json.h"

namespace {

__attribute__((constructor)) void allocscope_start() {
  allocscope::lifecycle::start();
  allocscope::foreign::detect();
  allocscope::fault_events::at_start();
}

__attribute__((destructor)) void allocscope_stop() {
  allocscope::write_exit_stats();
  allocscope::observe::finish(0);  // the timeline, and the live page removed
  allocscope::lifecycle::stop();
}

using exit_fn = void (*)(int);

// glibc's _exit (or _Exit), found before anything can call ours.
exit_fn real_exit(const char *name) {
  static exit_fn real_underscore = reinterpret_cast<exit_fn>(dlsym(RTLD_NEXT, "_exit"));
  static exit_fn real_capital = reinterpret_cast<exit_fn>(dlsym(RTLD_NEXT, "_Exit"));
  return name[1] == 'E' ? real_capital : real_underscore;
}
__attribute__((constructor)) void resolve_exits() { real_exit("_exit"), real_exit("_Exit"); }

// noexcept like glibc's dlopen and dlclose: calling a function that might throw from our
// noexcept wrapper would need an exception region around the call, and no tail call is
// possible.
using dlopen_fn = void *(*)(const char *, int) noexcept;
using dlclose_fn = int (*)(void *) noexcept;

// glibc's definition of `name` (the GLIBC_2.34 version, since libdl moved into libc),
// looked up once.
template <typename Fn>
Fn real_function(std::atomic<Fn> &cache, const char *name) {
  Fn fn = cache.load(std::memory_order_acquire);
  if (fn == nullptr) {
    fn = reinterpret_cast<Fn>(dlvsym(RTLD_NEXT, name, "GLIBC_2.34"));
    if (fn == nullptr) fn = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
    cache.store(fn, std::memory_order_release);
  }
  return fn;
}

std::atomic<dlopen_fn> g_real_dlopen{nullptr};
std::atomic<dlclose_fn> g_real_dlclose{nullptr};

}  // namespace

// _exit and _Exit skip the destructors, where the process gives back what it holds (a
// tree budget's grant: lifecycle::stop, async-signal-safe, as _exit must stay), the exit
// handler that writes fault.events' exit line (fault_events.h; async-signal-safe too) and the
// destructor that writes fault.record (only with that key: a sweep's baseline, whose
// children ending in _exit must list their call sites and stacks too; it formats with
// snprintf and names frames through the call-site cache, which a sweep run can afford).
// Shells end with _exit, and are often the first process of a tree.
AS_EXPORT void _exit(int status) {
  allocscope::fault_events::at_underscore_exit(status, "_exit");
  allocscope::fault::write_record();
  allocscope::lifecycle::stop();
  allocscope::live_page::close_page();  // a shell's children end here: no stale page
  real_exit("_exit")(status);
  __builtin_unreachable();
}
AS_EXPORT void _Exit(int status) {
  allocscope::fault_events::at_underscore_exit(status, "_Exit");
  allocscope::fault::write_record();
  allocscope::lifecycle::stop();
  allocscope::live_page::close_page();
  real_exit("_Exit")(status);
  __builtin_unreachable();
}

// RTLD_DEEPBIND puts a library's own dependencies, libc among them, before the global
// scope: its malloc would be glibc's while its pointers are freed by ours, and the
// reverse. So the flag is dropped, with a warning, as heaptrack does. The call to the real
// dlopen must stay a tail call: glibc finds the caller's RUNPATH and namespace from the
// return address, which must be our caller's, not ours (tests/programs checks this).
AS_EXPORT void *dlopen(const char *file, int mode) noexcept {
  if (AS_UNLIKELY(mode & RTLD_DEEPBIND)) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
      allocscope::report("dlopen(\"%s\"): RTLD_DEEPBIND dropped, so the library allocates "
                         "from the same heap as the rest of the process",
                         file != nullptr ? file : "(main program)");
    mode &= ~RTLD_DEEPBIND;
  }
  // glibc may have unloaded objects itself (iconv modules): the object about to be loaded
  // may take their addresses, so the call-site cache must know first.
  allocscope::loader_changed();
  return real_function(g_real_dlopen, "dlopen")(file, mode);
}

// After an object is unloaded, another may be loaded at its addresses: cached call sites
// there are checked again before their next use (callsite.h).
AS_EXPORT int dlclose(void *handle) noexcept {
  const int result = real_function(g_real_dlclose, "dlclose")(handle);
  allocscope::loader_changed();
  return result;
}
