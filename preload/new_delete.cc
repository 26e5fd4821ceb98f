// new_delete.cc: all twenty replaceable operator new/delete forms, and
// std::set_new_handler.
//
// They must live here: if liballocscope.so left them to libstdc++, its operator new would
// call our malloc (fine), but a program that also loads Debian's libjemalloc.so.2 would
// bind operator new to that second jemalloc. Defining all of them keeps one heap.
//
// operator new follows the thread's policy (under NOFAIL it never fails) and then the
// standard protocol: on failure call the installed std::new_handler and retry, throw
// std::bad_alloc when there is none. The nothrow forms run the same loop and turn the
// exception into nullptr, as libstdc++ does. Sized delete hands the size to jemalloc,
// which skips the size lookup free() has to make.
//
// With nothing engaged, plain new and sized delete jump to jemalloc's own (backend.h),
// which inline its fast path: a call into je_malloc would leave operator new a NULL test
// to make after it, and with it a stack frame (ten instructions instead of four). But
// jemalloc's new catches a std::bad_alloc thrown by the new_handler and throws a plain
// std::bad_alloc instead, losing a derived type the caller may catch, where libstdc++ lets
// it through. So std::set_new_handler is interposed (at the end): while a handler is
// installed, plain new runs our loop instead of jemalloc's.
#include <dlfcn.h>

#include <new>

#include "backend.h"
#include "engine.h"
#include "foreign.h"
#include "gate.h"

using allocscope::allocate;
using allocscope::Request;

namespace {

int align_flags(std::align_val_t align) {
  return MALLOCX_ALIGN(static_cast<size_t>(align));
}

// Another allocator serves the process (foreign.h): libstdc++'s operator new on its
// malloc, as the process would have without allocscope.
void *from_foreign_malloc(size_t size, size_t align) {
  const allocscope::foreign::Functions &process = allocscope::foreign::g_process;
  if (size == 0) size = 1;
  return align != 0 ? process.memalign(align, size) : process.malloc(size);
}

// The failure path of every throwing form: the engine applies the thread's policy (under
// NOFAIL it never returns NULL), then the new_handler loop runs.
[[gnu::noinline]] void *new_slow(const char *name, size_t size, size_t align,
                                 const void *caller) {
  for (;;) {
    Request r(name, size, caller);
    r.align = align;
    void *p = AS_UNLIKELY(allocscope::foreign::active()) ? from_foreign_malloc(size, align)
                                                          : allocate(r);
    if (p != nullptr) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) {
      // The exception object is allocated too (__cxa_allocate_exception): outside policy,
      // so that it neither fails again nor reports a second failure.
      allocscope::EngineGuard unpoliced;
      throw std::bad_alloc();
    }
    handler();
  }
}

void *new_nothrow(const char *name, size_t size, size_t align, const void *caller) noexcept {
  try {
    return new_slow(name, size, align, caller);
  } catch (...) {
    return nullptr;
  }
}

// operator new's slow half: engaged, or jemalloc failed.
[[gnu::noinline]] void *new_engaged(size_t size, const void *caller) {
  if (void *p = allocscope::malloc_before_engine(size)) return p;
  return new_slow("operator new", size, 0, caller);
}

inline void *new_aligned_impl(size_t size, std::align_val_t align, const void *caller) {
  if (AS_LIKELY(allocscope::may_skip_engine(size))) {
    void *p = je_mallocx(size == 0 ? 1 : size, align_flags(align));
    if (AS_LIKELY(p != nullptr)) return p;
  }
  return new_slow("operator new", size, static_cast<size_t>(align), caller);
}

inline void *new_nothrow_impl(size_t size, size_t align, const void *caller) noexcept {
  if (AS_LIKELY(allocscope::may_skip_engine(size))) {
    void *p = je_mallocx(size == 0 ? 1 : size, align != 0 ? MALLOCX_ALIGN(align) : 0);
    if (AS_LIKELY(p != nullptr)) return p;
  }
  return new_nothrow("operator new", size, align, caller);
}

// delete's engaged half: another allocator's free (foreign.h), or the engine's.
[[gnu::noinline]] void delete_engaged(void *p, size_t size, int flags) noexcept {
  if (AS_UNLIKELY(allocscope::foreign::active())) return allocscope::foreign::g_process.free(p);
  if (size == 0) return allocscope::release(p);
  if (p != nullptr) allocscope::release_sized(p, size, flags);
}

inline void delete_impl(void *p) noexcept { allocscope::gate::free_call()(p); }

inline void sized_delete(void *p, size_t size, int flags) noexcept {
  if (AS_UNLIKELY(p == nullptr)) return;
  if (AS_LIKELY(allocscope::gate::free_is_direct())) je_sdallocx(p, size, flags);
  else delete_engaged(p, size, flags);
}

}  // namespace

#define AS_NEW __attribute__((visibility("default")))

namespace allocscope {
namespace gate {

// Plain new while failure handling is engaged (gate.h), reached by operator new's jump:
// the return address is its caller's. jemalloc's malloc rather than its new, which would
// run the new_handler loop and throw itself.
void *new_checked(size_t size) {
  void *p = je_malloc(size);
  if (AS_LIKELY(p != nullptr)) return p;
  return new_slow("operator new", size, 0, __builtin_return_address(0));
}

}  // namespace gate
}  // namespace allocscope

// Plain new makes malloc's one test and jump (to jemalloc's own new, or new_checked): the
// engaged paths' finer tests (limit, reserves, kv_direct) stay out of it. new[] is the
// same call in jemalloc.
AS_NEW void *operator new(size_t size) {
  if (AS_LIKELY(allocscope::gate::new_is_direct(size))) return allocscope::gate::new_call()(size);
  return new_engaged(size, __builtin_return_address(0));
}
AS_NEW void *operator new[](size_t size) {
  if (AS_LIKELY(allocscope::gate::new_is_direct(size))) return allocscope::gate::new_call()(size);
  return new_engaged(size, __builtin_return_address(0));
}
AS_NEW void *operator new(size_t size, const std::nothrow_t &) noexcept {
  return new_nothrow_impl(size, 0, __builtin_return_address(0));
}
AS_NEW void *operator new[](size_t size, const std::nothrow_t &) noexcept {
  return new_nothrow_impl(size, 0, __builtin_return_address(0));
}
AS_NEW void *operator new(size_t size, std::align_val_t align) {
  return new_aligned_impl(size, align, __builtin_return_address(0));
}
AS_NEW void *operator new[](size_t size, std::align_val_t align) {
  return new_aligned_impl(size, align, __builtin_return_address(0));
}
AS_NEW void *operator new(size_t size, std::align_val_t align, const std::nothrow_t &) noexcept {
  return new_nothrow_impl(size, static_cast<size_t>(align), __builtin_return_address(0));
}
AS_NEW void *operator new[](size_t size, std::align_val_t align, const std::nothrow_t &) noexcept {
  return new_nothrow_impl(size, static_cast<size_t>(align), __builtin_return_address(0));
}

AS_NEW void operator delete(void *p) noexcept { delete_impl(p); }
AS_NEW void operator delete[](void *p) noexcept { delete_impl(p); }
AS_NEW void operator delete(void *p, const std::nothrow_t &) noexcept { delete_impl(p); }
AS_NEW void operator delete[](void *p, const std::nothrow_t &) noexcept { delete_impl(p); }
AS_NEW void operator delete(void *p, size_t size) noexcept {
  if (AS_LIKELY(allocscope::gate::free_is_direct())) return je_operator_delete_sized(p, size);
  delete_engaged(p, size, 0);
}
AS_NEW void operator delete[](void *p, size_t size) noexcept {
  if (AS_LIKELY(allocscope::gate::free_is_direct())) return je_operator_delete_array_sized(p, size);
  delete_engaged(p, size, 0);
}
AS_NEW void operator delete(void *p, std::align_val_t) noexcept { delete_impl(p); }
AS_NEW void operator delete[](void *p, std::align_val_t) noexcept { delete_impl(p); }
AS_NEW void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept {
  delete_impl(p);
}
AS_NEW void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept {
  delete_impl(p);
}
AS_NEW void operator delete(void *p, size_t size, std::align_val_t align) noexcept {
  sized_delete(p, size, align_flags(align));
}
AS_NEW void operator delete[](void *p, size_t size, std::align_val_t align) noexcept {
  sized_delete(p, size, align_flags(align));
}

// libstdc++'s set_new_handler, with the gate brought in step with the handler installed
// (gate::publish_new_handler). No lock (it would need handling across fork): like
// gate::change(), each
// caller writes the bit for the handler it reads, then reads again and repeats until the
// two agree, so the last write matches the last handler whatever threads race to set one.
// The bit is set before a handler goes in, so a new failing meanwhile runs our loop.
// (jemalloc's operator new calls this too, to read the handler, when none is installed.)
namespace std {
AS_NEW new_handler set_new_handler(new_handler handler) noexcept {
  using SetNewHandler = new_handler (*)(new_handler) noexcept;
  static const auto libstdcxx =
      reinterpret_cast<SetNewHandler>(dlsym(RTLD_NEXT, "_ZSt15set_new_handlerPFvvE"));
  bool installed = handler != nullptr;
  if (installed) allocscope::gate::publish_new_handler(true);
  const new_handler previous = libstdcxx(handler);
  for (;;) {
    allocscope::gate::publish_new_handler(installed);
    const bool now = std::get_new_handler() != nullptr;
    if (now == installed) break;
    installed = now;
  }
  return previous;
}
}  // namespace std
