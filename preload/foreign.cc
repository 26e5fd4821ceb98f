// foreign.cc: see foreign.h.
#include "foreign.h"

#include <dlfcn.h>
#include <link.h>
#include <string.h>

#include "report.h"
#include "thread_state.h"

extern "C" void *allocscope_own_malloc(size_t) noexcept;

namespace allocscope {
namespace foreign {

Functions g_process;

namespace {

// The object allocscope is linked into, to tell our own definitions from others'.
const void *own_base() {
  Dl_info info;
  return dladdr(reinterpret_cast<const void *>(&detect), &info) != 0 ? info.dli_fbase : nullptr;
}

// `name` as the process resolves it, or, where that is our own definition, the next one.
template <typename Fn>
void resolve(Fn *out, const char *name, const void *own) {
  void *fn = dlsym(RTLD_DEFAULT, name);
  Dl_info info;
  if (fn == nullptr || (dladdr(fn, &info) != 0 && info.dli_fbase == own))
    fn = dlsym(RTLD_NEXT, name);
  *out = reinterpret_cast<Fn>(fn);
}

// The object that defines the malloc the process uses, if it is not ours. dlsym alone
// cannot tell: for an executable that takes malloc's address it returns the executable's
// PLT stub (an undefined symbol with a value), which still leads to us. Only a symbol
// *defined* at that address is another allocator (under whatever name: tcmalloc's is
// tc_malloc, aliased).
const char *other_malloc_owner() {
  void *resolved = dlsym(RTLD_DEFAULT, "malloc");
  if (resolved == reinterpret_cast<void *>(&allocscope_own_malloc)) return nullptr;
  Dl_info info = {};
  ElfW(Sym) *sym = nullptr;
  if (dladdr1(resolved, &info, reinterpret_cast<void **>(&sym), RTLD_DL_SYMENT) == 0 ||
      sym == nullptr || sym->st_shndx == SHN_UNDEF || info.dli_saddr != resolved)
    return nullptr;
  return info.dli_fname != nullptr && info.dli_fname[0] != '\0' ? info.dli_fname : "the program";
}

}  // namespace

void detect() {
  EngineGuard guard;
  const char *owner = other_malloc_owner();
  if (owner == nullptr) return;
  const void *own = own_base();
  resolve(&g_process.malloc, "malloc", own);
  resolve(&g_process.free, "free", own);
  resolve(&g_process.calloc, "calloc", own);
  resolve(&g_process.realloc, "realloc", own);
  resolve(&g_process.memalign, "memalign", own);
  resolve(&g_process.malloc_usable_size, "malloc_usable_size", own);
  resolve(&g_process.malloc_trim, "malloc_trim", own);
  resolve(&g_process.mallinfo, "mallinfo", own);
  resolve(&g_process.mallinfo2, "mallinfo2", own);
  resolve(&g_process.malloc_stats, "malloc_stats", own);
  resolve(&g_process.malloc_info, "malloc_info", own);
  resolve(&g_process.mallopt, "mallopt", own);
  gate::publish_foreign();
  report("inactive: malloc is defined by %s, which has its own allocator; allocations there "
         "bypass allocscope, and its malloc functions are passed through",
         owner);
}

}  // namespace foreign
}  // namespace allocscope
