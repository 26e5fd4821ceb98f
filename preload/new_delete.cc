// new_delete.cc: all twenty replaceable operator new/delete forms.
//
// They must live here: if liballocscope.so left them to libstdc++, its operator new would
// call our malloc (fine), but a program that also loads Debian's libjemalloc.so.2 would
// bind operator new to that second jemalloc. Defining all of them keeps one heap.
//
// operator new follows the standard protocol: on failure call the installed
// std::new_handler and retry, throw std::bad_alloc when there is none. The nothrow forms
// run the same loop and turn the exception into nullptr, as libstdc++ does. Sized delete
// hands the size to jemalloc (sdallocx), which skips the size lookup free() has to make.
#include <new>

#include "backend.h"

namespace {

int align_flags(std::align_val_t align) {
  return MALLOCX_ALIGN(static_cast<size_t>(align));
}

// The failure path of every throwing form: the new_handler loop.
[[gnu::noinline, gnu::cold]] void *new_slow(size_t size, int flags) {
  for (;;) {
    void *p = je_mallocx(size == 0 ? 1 : size, flags);
    if (p != nullptr) return p;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void *new_nothrow(size_t size, int flags) noexcept {
  try {
    return new_slow(size, flags);
  } catch (...) {
    return nullptr;
  }
}

inline void *new_impl(size_t size) {
  void *p = je_malloc(size);
  if (AS_LIKELY(p != nullptr)) return p;
  return new_slow(size, 0);
}

inline void *new_aligned_impl(size_t size, std::align_val_t align) {
  const int flags = align_flags(align);
  void *p = je_mallocx(size == 0 ? 1 : size, flags);
  if (AS_LIKELY(p != nullptr)) return p;
  return new_slow(size, flags);
}

inline void *new_nothrow_impl(size_t size, int flags) noexcept {
  void *p = je_mallocx(size == 0 ? 1 : size, flags);
  if (AS_LIKELY(p != nullptr)) return p;
  return new_nothrow(size, flags);
}

inline void sized_delete(void *p, size_t size, int flags) noexcept {
  if (AS_UNLIKELY(p == nullptr)) return;
  je_sdallocx(p, size, flags);
}

}  // namespace

#define AS_NEW __attribute__((visibility("default")))

AS_NEW void *operator new(size_t size) { return new_impl(size); }
AS_NEW void *operator new[](size_t size) { return new_impl(size); }
AS_NEW void *operator new(size_t size, const std::nothrow_t &) noexcept {
  return new_nothrow_impl(size, 0);
}
AS_NEW void *operator new[](size_t size, const std::nothrow_t &) noexcept {
  return new_nothrow_impl(size, 0);
}
AS_NEW void *operator new(size_t size, std::align_val_t align) {
  return new_aligned_impl(size, align);
}
AS_NEW void *operator new[](size_t size, std::align_val_t align) {
  return new_aligned_impl(size, align);
}
AS_NEW void *operator new(size_t size, std::align_val_t align, const std::nothrow_t &) noexcept {
  return new_nothrow_impl(size, align_flags(align));
}
AS_NEW void *operator new[](size_t size, std::align_val_t align, const std::nothrow_t &) noexcept {
  return new_nothrow_impl(size, align_flags(align));
}

AS_NEW void operator delete(void *p) noexcept { je_free(p); }
AS_NEW void operator delete[](void *p) noexcept { je_free(p); }
AS_NEW void operator delete(void *p, const std::nothrow_t &) noexcept { je_free(p); }
AS_NEW void operator delete[](void *p, const std::nothrow_t &) noexcept { je_free(p); }
AS_NEW void operator delete(void *p, size_t size) noexcept { sized_delete(p, size, 0); }
AS_NEW void operator delete[](void *p, size_t size) noexcept { sized_delete(p, size, 0); }
AS_NEW void operator delete(void *p, std::align_val_t) noexcept { je_free(p); }
AS_NEW void operator delete[](void *p, std::align_val_t) noexcept { je_free(p); }
AS_NEW void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept {
  je_free(p);
}
AS_NEW void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept {
  je_free(p);
}
AS_NEW void operator delete(void *p, size_t size, std::align_val_t align) noexcept {
  sized_delete(p, size, align_flags(align));
}
AS_NEW void operator delete[](void *p, size_t size, std::align_val_t align) noexcept {
  sized_delete(p, size, align_flags(align));
}
