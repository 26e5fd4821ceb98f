// malloc_api.cc: the C malloc family with glibc's semantics, served by jemalloc.
//
// Each entry point is the fast path: one call into jemalloc, which already gives glibc's
// answers for most edge cases (malloc(0) is a unique pointer, calloc overflow and sizes
// above PTRDIFF_MAX fail with ENOMEM, realloc(p, 0) frees and returns NULL, as
// zero_realloc:free does). Where glibc and jemalloc disagree (realloc's errno, memalign's
// rounding, pvalloc, reallocarray, which jemalloc lacks) the difference is handled here
// and commented. The __libc_* aliases exist because some code (old Red Hat libraries,
// profilers) calls them directly; they must reach the same heap as malloc.
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "backend.h"

namespace {

// glibc's MALLOC_ALIGNMENT on x86-64: alignments up to this are what malloc gives anyway.
constexpr size_t kMallocAlignment = 16;

// jemalloc's realloc leaves errno alone when it fails (size above its largest class);
// glibc sets ENOMEM. A NULL for size 0 is not a failure: the block was freed.
inline void *realloc_impl(void *ptr, size_t size) {
  void *result = je_realloc(ptr, size);
  if (AS_UNLIKELY(result == nullptr) && size != 0) errno = ENOMEM;
  return result;
}

size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace

AS_EXPORT void *malloc(size_t size) noexcept { return je_malloc(size); }

AS_EXPORT void free(void *ptr) noexcept { je_free(ptr); }

AS_EXPORT void *calloc(size_t n, size_t size) noexcept { return je_calloc(n, size); }

AS_EXPORT void *realloc(void *ptr, size_t size) noexcept { return realloc_impl(ptr, size); }

AS_EXPORT void *reallocarray(void *ptr, size_t n, size_t size) noexcept {
  size_t bytes;
  if (AS_UNLIKELY(__builtin_mul_overflow(n, size, &bytes))) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc_impl(ptr, bytes);
}

AS_EXPORT int posix_memalign(void **out, size_t align, size_t size) noexcept {
  return je_posix_memalign(out, align, size);
}

// C17 and glibc >= 2.38: the alignment must be a power of two, otherwise EINVAL.
AS_EXPORT void *aligned_alloc(size_t align, size_t size) noexcept {
  return je_aligned_alloc(align, size);
}

// glibc's memalign is lenient where jemalloc's is not: an alignment up to
// MALLOC_ALIGNMENT is plain malloc, and one that is not a power of two is rounded up
// to the next. Only an alignment with no power of two above it is EINVAL.
AS_EXPORT void *memalign(size_t align, size_t size) noexcept {
  if (align <= kMallocAlignment) return je_malloc(size);
  if (AS_UNLIKELY(align > SIZE_MAX / 2 + 1)) {
    errno = EINVAL;
    return nullptr;
  }
  if (align & (align - 1)) align = size_t{1} << (64 - __builtin_clzl(align));
  return je_aligned_alloc(align, size);
}

AS_EXPORT void *valloc(size_t size) noexcept { return je_aligned_alloc(page_size(), size); }

// pvalloc also rounds the size up to whole pages (glibc), failing with ENOMEM when the
// rounding overflows.
AS_EXPORT void *pvalloc(size_t size) noexcept {
  const size_t page = page_size();
  size_t rounded;
  if (AS_UNLIKELY(__builtin_add_overflow(size, page - 1, &rounded))) {
    errno = ENOMEM;
    return nullptr;
  }
  return je_aligned_alloc(page, rounded & ~(page - 1));
}

AS_EXPORT size_t malloc_usable_size(void *ptr) noexcept {
  return ptr == nullptr ? 0 : je_malloc_usable_size(ptr);
}

// The glibc-internal names, bound to the same functions.
AS_EXPORT void *__libc_malloc(size_t) noexcept __attribute__((alias("malloc"), copy(malloc)));
AS_EXPORT void __libc_free(void *) noexcept __attribute__((alias("free"), copy(free)));
AS_EXPORT void *__libc_calloc(size_t, size_t) noexcept __attribute__((alias("calloc"), copy(calloc)));
AS_EXPORT void *__libc_realloc(void *, size_t) noexcept __attribute__((alias("realloc"), copy(realloc)));
AS_EXPORT void *__libc_memalign(size_t, size_t) noexcept __attribute__((alias("memalign"), copy(memalign)));
AS_EXPORT void *__libc_valloc(size_t) noexcept __attribute__((alias("valloc"), copy(valloc)));
AS_EXPORT void *__libc_pvalloc(size_t) noexcept __attribute__((alias("pvalloc"), copy(pvalloc)));

// malloc under a name that no other object can interpose: startup.cc compares it with
// what the dynamic linker resolves "malloc" to, to tell whether the preload is active.
extern "C" void *allocscope_own_malloc(size_t) noexcept
    __attribute__((alias("malloc"), copy(malloc), visibility("hidden")));
