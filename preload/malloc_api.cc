// malloc_api.cc: the C malloc family with glibc's semantics.
//
// Each entry point first tries the fast path: while is_direct(size) holds (nothing engaged,
// or only a limit that is not near and a small size: see policy/gate.h) it is a tail call
// into jemalloc, which already gives glibc's answers for
// most edge cases (malloc(0) is a unique pointer, calloc overflow and sizes above
// PTRDIFF_MAX fail with ENOMEM, realloc(p, 0) frees and returns NULL, as zero_realloc:free
// does). When the fast path is off, or jemalloc fails, the call goes to the engine
// (policy/engine.h), which applies the thread's policy. Where glibc and jemalloc disagree
// (realloc's errno, memalign's rounding, pvalloc, reallocarray, which jemalloc lacks) the
// difference is handled here and commented. The __libc_* aliases exist because some code
// (old Red Hat libraries, profilers) calls them directly; they must reach the same heap.
#include <errno.h>
#include <stdint.h>

#include "backend.h"
#include "engine.h"
#include "foreign.h"
#include "gate.h"
#include "sys.h"

using allocscope::allocate;
using allocscope::Request;
using allocscope::gate::aligned_bound;
using allocscope::gate::is_direct;

namespace {

// glibc's MALLOC_ALIGNMENT on x86-64: alignments up to this are what malloc gives anyway.
constexpr size_t kMallocAlignment = 16;

bool is_power_of_two(size_t n) { return n != 0 && (n & (n - 1)) == 0; }

// Each *_engaged function is the slow half of an entry point, out of line so that the
// fast half stays a test and a tail call into jemalloc. noexcept like the entry points:
// otherwise the call from a noexcept function needs a frame to terminate in, and cannot
// be a tail call.

using allocscope::foreign::g_process;

[[gnu::noinline]] void *malloc_engaged(size_t size, const void *caller) noexcept {
  if (AS_UNLIKELY(allocscope::foreign::active())) return g_process.malloc(size);
  if (void *p = allocscope::malloc_before_engine(size)) return p;
  return allocate(Request("malloc", size, caller));
}

// `bytes` is n * size, or SIZE_MAX when that overflows (which fails the size cap).
[[gnu::noinline]] void *calloc_engaged(size_t n, size_t size, size_t bytes,
                                       const void *caller) noexcept {
  if (AS_UNLIKELY(allocscope::foreign::active())) return g_process.calloc(n, size);
  if (allocscope::may_skip_engine(bytes)) {
    void *p = je_calloc(n, size);
    if (AS_LIKELY(p != nullptr)) return p;
  }
  Request r("calloc", bytes, caller);
  r.call = ALLOCSCOPE_ZERO;
  return allocate(r);
}

// An allocation with a validated power-of-two alignment.
[[gnu::noinline]] void *aligned_engaged(const char *name, size_t align, size_t size,
                                        const void *caller) noexcept {
  if (AS_UNLIKELY(allocscope::foreign::active())) return g_process.memalign(align, size);
  if (allocscope::may_skip_engine(size)) {
    void *p = je_aligned_alloc(align, size);
    if (AS_LIKELY(p != nullptr)) return p;
  }
  Request r(name, size, caller);
  r.align = align;
  return allocate(r);
}

inline void *aligned(const char *name, size_t align, size_t size, const void *caller) {
  if (AS_LIKELY(is_direct(aligned_bound(size, align)))) return je_aligned_alloc(align, size);
  return aligned_engaged(name, align, size, caller);
}

// realloc's slow half: NULL allocates, size 0 frees, anything else resizes under policy.
// With a limit the growth must be charged, with kv it may move to a region, a region
// pointer is never jemalloc's, with fault injection every call is a candidate, and a
// reserve may serve it or need a refill: those always go through the engine.
[[gnu::noinline]] void *realloc_engaged(const char *name, void *ptr, size_t size,
                                        const void *caller) noexcept {
  if (AS_UNLIKELY(allocscope::foreign::active())) return g_process.realloc(ptr, size);
  if (ptr == nullptr) return malloc_engaged(size, caller);
  if (size == 0) {
    allocscope::release(ptr);
    return nullptr;
  }
  // Only failure handling (or waiters) engaged: jemalloc first, the engine on failure.
  if (allocscope::gate::realloc_tries_jemalloc_first() && allocscope::within_max_size(size)) {
    void *p = je_realloc(ptr, size);
    if (AS_LIKELY(p != nullptr)) return p;
  }
  Request r(name, size, caller);
  r.old = ptr;
  return allocate(r);
}

// jemalloc's realloc leaves errno alone when it fails; glibc sets ENOMEM.
// A realloc jemalloc failed while failure handling is engaged: the engine (the block at
// ptr is still the caller's).
[[gnu::noinline]] void *realloc_failed(const char *name, void *ptr, size_t size,
                                       const void *caller) noexcept {
  Request r(name, size, caller);
  r.old = ptr;
  return allocate(r);
}

// Always inlined into realloc and reallocarray, so __builtin_return_address(0) is their
// caller's; read only where needed, not held in a register across the jemalloc call.
[[gnu::always_inline]] inline void *realloc_impl(const char *name, void *ptr, size_t size) {
  if (AS_LIKELY(allocscope::gate::realloc_is_direct(size))) {
    void *result = je_realloc(ptr, size);
    if (AS_UNLIKELY(result == nullptr) && size != 0) {
      if (allocscope::gate::failure_handled())
        return realloc_failed(name, ptr, size, __builtin_return_address(0));
      errno = ENOMEM;
    }
    return result;
  }
  return realloc_engaged(name, ptr, size, __builtin_return_address(0));
}

}  // namespace

// One compare and one jump, to je_malloc or (failure handling engaged) malloc_checked.
AS_EXPORT void *malloc(size_t size) noexcept {
  if (AS_LIKELY(allocscope::gate::malloc_is_direct(size)))
    return allocscope::gate::malloc_call()(size);
  return malloc_engaged(size, __builtin_return_address(0));
}

// One jump: to je_free, or to free_engaged when a free must do more.
AS_EXPORT void free(void *ptr) noexcept { return allocscope::gate::free_call()(ptr); }

// malloc_checked's failure path: the engine, for malloc's caller.
extern "C" AS_HIDDEN void *allocscope_malloc_failed(size_t size, const void *caller) noexcept {
  return allocate(Request("malloc", size, caller));
}

// malloc_checked (gate.h), reached by malloc's jump, so the return address on the stack
// is malloc's caller's. On x86-64 in assembly: on success it costs six instructions
// where the compiler's takes seven (it keeps the size in a callee-saved register, which
// it must save and restore); here one push both aligns the stack for the call and keeps
// the size for the failure path. That instruction is a seventh of what failure handling
// costs a malloc/free pair (issue 20's budget: 10 over jemalloc).
#if defined(__x86_64__)
asm(R"(
  .text
  .p2align 4
  .globl allocscope_malloc_checked
  .hidden allocscope_malloc_checked
  .type allocscope_malloc_checked, @function
allocscope_malloc_checked:
  .cfi_startproc
  pushq %rdi
  .cfi_adjust_cfa_offset 8
  call je_malloc
  testq %rax, %rax
  je 1f
  popq %rcx
  .cfi_adjust_cfa_offset -8
  ret
1:
  .cfi_adjust_cfa_offset 8
  popq %rdi
  .cfi_adjust_cfa_offset -8
  movq (%rsp), %rsi
  jmp allocscope_malloc_failed
  .cfi_endproc
  .size allocscope_malloc_checked, .-allocscope_malloc_checked
)");
#else
namespace allocscope {
namespace gate {
void *malloc_checked(size_t size) noexcept {
  void *p = je_malloc(size);
  if (AS_LIKELY(p != nullptr)) return p;
  return allocscope_malloc_failed(size, __builtin_return_address(0));
}
}  // namespace gate
}  // namespace allocscope
#endif

namespace allocscope {
namespace gate {

void free_engaged(void *ptr) noexcept {
  if (AS_UNLIKELY(foreign::active())) return g_process.free(ptr);
  release(ptr);
}

}  // namespace gate
}  // namespace allocscope

AS_EXPORT void *calloc(size_t n, size_t size) noexcept {
  size_t bytes;
  // An overflow fails in jemalloc when nothing is engaged, in the engine otherwise.
  if (__builtin_mul_overflow(n, size, &bytes)) bytes = SIZE_MAX;
  if (AS_LIKELY(is_direct(bytes))) return je_calloc(n, size);
  return calloc_engaged(n, size, bytes, __builtin_return_address(0));
}

AS_EXPORT void *realloc(void *ptr, size_t size) noexcept {
  return realloc_impl("realloc", ptr, size);
}

AS_EXPORT void *reallocarray(void *ptr, size_t n, size_t size) noexcept {
  size_t bytes;
  if (AS_UNLIKELY(__builtin_mul_overflow(n, size, &bytes))) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc_impl("reallocarray", ptr, bytes);
}

AS_EXPORT int posix_memalign(void **out, size_t align, size_t size) noexcept {
  if (!is_power_of_two(align) || align % sizeof(void *) != 0) return EINVAL;
  const int saved_errno = errno;  // posix_memalign reports through its result
  void *p = aligned("posix_memalign", align, size, __builtin_return_address(0));
  errno = saved_errno;
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}

// C17 and glibc >= 2.38: the alignment must be a power of two, otherwise EINVAL.
AS_EXPORT void *aligned_alloc(size_t align, size_t size) noexcept {
  if (!is_power_of_two(align)) {
    errno = EINVAL;
    return nullptr;
  }
  return aligned("aligned_alloc", align, size, __builtin_return_address(0));
}

// glibc's memalign is lenient where jemalloc's is not: an alignment up to
// MALLOC_ALIGNMENT is plain malloc, and one that is not a power of two is rounded up
// to the next. Only an alignment with no power of two above it is EINVAL.
AS_EXPORT void *memalign(size_t align, size_t size) noexcept {
  if (align <= kMallocAlignment) align = kMallocAlignment;
  if (AS_UNLIKELY(align > SIZE_MAX / 2 + 1)) {
    errno = EINVAL;
    return nullptr;
  }
  if (!is_power_of_two(align)) align = size_t{1} << (64 - __builtin_clzl(align));
  return aligned("memalign", align, size, __builtin_return_address(0));
}

AS_EXPORT void *valloc(size_t size) noexcept {
  return aligned("valloc", allocscope::sys::page_size(), size, __builtin_return_address(0));
}

// pvalloc also rounds the size up to whole pages (glibc), failing with ENOMEM when the
// rounding overflows.
AS_EXPORT void *pvalloc(size_t size) noexcept {
  const size_t page = allocscope::sys::page_size();
  size_t rounded;
  if (AS_UNLIKELY(__builtin_add_overflow(size, page - 1, &rounded))) {
    errno = ENOMEM;
    return nullptr;
  }
  return aligned("pvalloc", page, rounded & ~(page - 1), __builtin_return_address(0));
}

AS_EXPORT size_t malloc_usable_size(void *ptr) noexcept {
  if (AS_UNLIKELY(allocscope::foreign::active())) return g_process.malloc_usable_size(ptr);
  return ptr == nullptr ? 0 : allocscope::usable_size(ptr);
}

// The glibc-internal names, bound to the same functions.
AS_EXPORT void *__libc_malloc(size_t) noexcept AS_ALIAS_OF(malloc);
AS_EXPORT void __libc_free(void *) noexcept AS_ALIAS_OF(free);
AS_EXPORT void *__libc_calloc(size_t, size_t) noexcept AS_ALIAS_OF(calloc);
AS_EXPORT void *__libc_realloc(void *, size_t) noexcept AS_ALIAS_OF(realloc);
AS_EXPORT void *__libc_memalign(size_t, size_t) noexcept AS_ALIAS_OF(memalign);
AS_EXPORT void *__libc_valloc(size_t) noexcept AS_ALIAS_OF(valloc);
AS_EXPORT void *__libc_pvalloc(size_t) noexcept AS_ALIAS_OF(pvalloc);

// malloc under a name that no other object can interpose: foreign.cc compares it with
// what the dynamic linker resolves "malloc" to, to tell whether the preload is active.
extern "C" void *allocscope_own_malloc(size_t) noexcept AS_ALIAS_OF(malloc) AS_HIDDEN;
