// control_api.cc: the C API of shim/allocscope.h as the preload implements it. The
// client library in shim/ defines the same names as no-ops; under the preload these
// definitions come first in the lookup scope and win.
#include <errno.h>
#include <stdint.h>

#include "allocscope.h"
#include "backend.h"
#include "budget.h"
#include "control.h"
#include "engine.h"
#include "fault.h"
#include "pool.h"
#include "reclaim.h"
#include "scope.h"
#include "stats_json.h"
#include "thread_state.h"
#include "version.h"

using allocscope::allocate;
using allocscope::Request;

namespace {

// An allocation through the call-site API: always the engine, whose flags are the point.
void *allocate_with(const char *name, size_t size, allocscope_flags_t flags, const void *caller) {
  Request r(name, size, caller);
  r.call = flags;
  return allocate(r);
}

}  // namespace

AS_EXPORT allocscope_cookie_t allocscope_save(allocscope_flags_t flags) {
  return allocscope::scope::save(flags, __builtin_return_address(0));
}

AS_EXPORT allocscope_cookie_t allocscope_clear(allocscope_flags_t flags) {
  return allocscope::scope::clear(flags);
}

AS_EXPORT void allocscope_restore(allocscope_cookie_t cookie) {
  allocscope::scope::restore(cookie);
}

AS_EXPORT allocscope_flags_t allocscope_current(void) {
  return allocscope::t_state.scope.flags;
}

AS_EXPORT void *allocscope_alloc(size_t size, allocscope_flags_t flags) {
  return allocate_with("allocscope_alloc", size, flags, __builtin_return_address(0));
}

AS_EXPORT void *allocscope_kvmalloc(size_t size, allocscope_flags_t flags) {
  return allocate_with("allocscope_kvmalloc", size, flags | ALLOCSCOPE_KV,
                       __builtin_return_address(0));
}

AS_EXPORT int allocscope_is_region(const void *p) {
  return allocscope::region::contains(p) && allocscope::region::usable_size(p) != 0;
}

AS_EXPORT void *allocscope_calloc(size_t n, size_t size, allocscope_flags_t flags) {
  size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) bytes = SIZE_MAX;  // fails the size cap
  return allocate_with("allocscope_calloc", bytes, flags | ALLOCSCOPE_ZERO,
                       __builtin_return_address(0));
}

AS_EXPORT void *allocscope_realloc(void *p, size_t size, allocscope_flags_t flags) {
  if (p != nullptr && size == 0) {
    allocscope::release(p);
    return nullptr;
  }
  Request r("allocscope_realloc", size, __builtin_return_address(0));
  r.old = p;
  r.call = flags;
  return allocate(r);
}

AS_EXPORT void *allocscope_aligned_alloc(size_t align, size_t size, allocscope_flags_t flags) {
  if (align == 0 || (align & (align - 1)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  Request r("allocscope_aligned_alloc", size, __builtin_return_address(0));
  r.align = align;
  r.call = flags;
  return allocate(r);
}

AS_EXPORT int allocscope_reclaimer_add(const char *name, unsigned klass,
                                       allocscope_reclaim_fn fn, void *arg) {
  return allocscope::reclaim::add(name, klass, fn, arg);
}

AS_EXPORT int allocscope_reclaimer_remove(int id) { return allocscope::reclaim::remove(id); }

AS_EXPORT int allocscope_config(const char *conf) {
  if (conf == nullptr) return -EINVAL;
  allocscope::EngineGuard guard;
  return allocscope::apply_config(conf, "allocscope_config") == 0 ? 0 : -EINVAL;
}

AS_EXPORT int allocscope_limit_set(size_t bytes) {
  allocscope::EngineGuard guard;
  allocscope::budget::set_limit(bytes);
  return 0;
}

AS_EXPORT size_t allocscope_limit_get(void) { return allocscope::budget::limit(); }

AS_EXPORT size_t allocscope_charged(void) {
  allocscope::EngineGuard guard;
  return allocscope::budget::charged();
}

AS_EXPORT int allocscope_stats_json(char *buf, size_t len) {
  allocscope::EngineGuard guard;
  return allocscope::stats_json(buf, len);
}

AS_EXPORT int allocscope_fail_nth(unsigned n) { return allocscope::fault::set_fail_nth(n); }

AS_EXPORT unsigned allocscope_fail_nth_left(void) { return allocscope::fault::fail_nth_left(); }

AS_EXPORT int allocscope_fault_mark(int on) { return allocscope::fault::mark_thread(on != 0); }

AS_EXPORT int allocscope_active(void) { return 1; }

AS_EXPORT const char *allocscope_version(void) { return allocscope::kVersion; }

AS_EXPORT int allocscope_reserve(size_t bytes) { return allocscope::make_reserve(bytes); }

AS_EXPORT size_t allocscope_reserve_release(void) {
  allocscope::EngineGuard guard;
  return allocscope::reserve::release(allocscope::t_state);
}

AS_EXPORT size_t allocscope_reserve_left(void) {
  const allocscope::ReserveThread &reserve = allocscope::t_state.reserve;
  return reserve.size != 0 && reserve.left > 0 ? static_cast<size_t>(reserve.left) : 0;
}

// Pools (policy/pool.h): the engine's allocations under the caller's flags and scope.
AS_EXPORT allocscope_pool *allocscope_pool_create(size_t elem_size, unsigned min_nr) {
  return allocscope::pool::create(elem_size, min_nr, __builtin_return_address(0));
}

AS_EXPORT void *allocscope_pool_alloc(allocscope_pool *pool, allocscope_flags_t flags) {
  return allocscope::pool::alloc_element(pool, flags, __builtin_return_address(0));
}

AS_EXPORT void allocscope_pool_free(allocscope_pool *pool, void *elem) {
  allocscope::pool::free_element(pool, elem);
}

AS_EXPORT void allocscope_pool_destroy(allocscope_pool *pool) {
  allocscope::pool::destroy(pool, __builtin_return_address(0));
}
