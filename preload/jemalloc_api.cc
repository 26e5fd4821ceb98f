// jemalloc_api.cc: jemalloc's non-standard API, exported under its usual names.
//
// A program that links libjemalloc itself (Debian's redis-server does) calls mallocx,
// sdallocx, nallocx and mallctl. Under the preload these bind here, to the jemalloc that
// also serves its malloc, so the program sees one consistent heap and one set of
// statistics rather than a second, idle jemalloc. (malloc_conf and malloc_message are
// jemalloc's own variables, exported as they are: see jemalloc-public-symbols.txt.)
//
// Allocations through it follow the thread's policy like malloc's: the fast path is the
// jemalloc call, the engine handles limits and failures.
#include "backend.h"
#include "engine.h"
#include "gate.h"

using allocscope::allocate;
using allocscope::may_skip_engine;
using allocscope::Request;
using allocscope::gate::free_is_direct;

namespace {

// The alignment mallocx flags ask for (MALLOCX_LG_ALIGN's bits), 0 for the default.
size_t alignment_of(int flags) {
  const int lg_align = flags & 0x3f;
  return lg_align != 0 ? size_t{1} << lg_align : 0;
}

}  // namespace

AS_EXPORT void *mallocx(size_t size, int flags) {
  if (AS_LIKELY(may_skip_engine(size))) {
    void *p = je_mallocx(size, flags);
    if (AS_LIKELY(p != nullptr)) return p;
  }
  Request r("mallocx", size, __builtin_return_address(0));
  r.jemalloc_flags = flags;
  return allocate(r);
}

AS_EXPORT void *rallocx(void *ptr, size_t size, int flags) {
  const size_t bound = allocscope::gate::aligned_bound(size, alignment_of(flags));
  if (AS_LIKELY(allocscope::gate::realloc_is_direct(bound))) {
    void *p = je_rallocx(ptr, size, flags);
    if (AS_LIKELY(p != nullptr)) return p;
  }
  Request r("rallocx", size, __builtin_return_address(0));
  r.old = ptr;
  r.jemalloc_flags = flags;
  return allocate(r);
}

AS_EXPORT size_t xallocx(void *ptr, size_t size, size_t extra, int flags) {
  if (AS_LIKELY(allocscope::gate::resize_in_place_is_direct()))
    return je_xallocx(ptr, size, extra, flags);
  return allocscope::resize_in_place(ptr, size, extra, flags);
}

AS_EXPORT size_t sallocx(const void *ptr, int flags) {
  if (allocscope::region::contains(ptr)) return allocscope::region::usable_size(ptr);
  return je_sallocx(ptr, flags);
}

AS_EXPORT void dallocx(void *ptr, int flags) {
  if (AS_LIKELY(free_is_direct())) je_dallocx(ptr, flags);
  else allocscope::release(ptr, flags);
}

AS_EXPORT void sdallocx(void *ptr, size_t size, int flags) {
  if (AS_LIKELY(free_is_direct())) je_sdallocx(ptr, size, flags);
  else allocscope::release_sized(ptr, size, flags);
}

AS_EXPORT size_t nallocx(size_t size, int flags) { return je_nallocx(size, flags); }

AS_EXPORT int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp,
                      size_t newlen) {
  return je_mallctl(name, oldp, oldlenp, newp, newlen);
}

AS_EXPORT int mallctlnametomib(const char *name, size_t *mibp, size_t *miblenp) {
  return je_mallctlnametomib(name, mibp, miblenp);
}

AS_EXPORT int mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp,
                           void *newp, size_t newlen) {
  return je_mallctlbymib(mib, miblen, oldp, oldlenp, newp, newlen);
}

AS_EXPORT void malloc_stats_print(void (*write_cb)(void *, const char *), void *cbopaque,
                                  const char *opts) {
  je_malloc_stats_print(write_cb, cbopaque, opts);
}
