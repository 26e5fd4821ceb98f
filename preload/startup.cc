// startup.cc: the preload's constructor and destructor (policy/lifecycle.h does the
// start-up itself; here: checking that the preload really serves the process, and the
// exit stats), and the dlopen wrapper.
#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <stdlib.h>

#include <atomic>

#include "backend.h"
#include "lifecycle.h"
#include "report.h"
#include "stats_json.h"

extern "C" void *allocscope_own_malloc(size_t) noexcept;

namespace {

// A program that defines (and exports) malloc itself comes first in the lookup scope,
// before the preload: then its allocations never reach allocscope. Say so, once, naming
// the object that won. dlsym alone cannot tell: for an executable that takes malloc's
// address it returns the executable's PLT stub (an undefined symbol with a value), which
// still leads to us. Only a symbol named malloc *defined* at that address is another
// allocator.
void check_interposition() {
  void *resolved = dlsym(RTLD_DEFAULT, "malloc");
  if (resolved == reinterpret_cast<void *>(&allocscope_own_malloc)) return;
  Dl_info info = {};
  ElfW(Sym) *sym = nullptr;
  if (dladdr1(resolved, &info, reinterpret_cast<void **>(&sym), RTLD_DL_SYMENT) == 0 ||
      sym == nullptr || sym->st_shndx == SHN_UNDEF || info.dli_saddr != resolved || info.dli_sname == nullptr ||
      strcmp(info.dli_sname, "malloc") != 0)
    return;
  allocscope::report("inactive: malloc is defined by %s, which has its own allocator; "
                     "allocations there bypass allocscope",
                     info.dli_fname != nullptr ? info.dli_fname : "an unknown object");
}

__attribute__((constructor)) void allocscope_start() {
  allocscope::lifecycle::start();
  check_interposition();
}

__attribute__((destructor)) void allocscope_stop() { allocscope::write_exit_stats(); }

// noexcept like glibc's dlopen: calling a function that might throw from our noexcept
// wrapper would need an exception region around the call, and no tail call is possible.
using dlopen_fn = void *(*)(const char *, int) noexcept;

dlopen_fn real_dlopen() {
  static std::atomic<dlopen_fn> real{nullptr};
  dlopen_fn fn = real.load(std::memory_order_acquire);
  if (fn == nullptr) {
    fn = reinterpret_cast<dlopen_fn>(dlvsym(RTLD_NEXT, "dlopen", "GLIBC_2.34"));
    if (fn == nullptr) fn = reinterpret_cast<dlopen_fn>(dlsym(RTLD_NEXT, "dlopen"));
    real.store(fn, std::memory_order_release);
  }
  return fn;
}

}  // namespace

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
  return real_dlopen()(file, mode);
}
