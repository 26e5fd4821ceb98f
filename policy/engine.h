// engine.h: the slow path every entry point falls back to.
//
// An entry point calls jemalloc directly while gate::is_direct(size) holds and jemalloc
// succeeds. Otherwise it describes the call as a Request and hands it to allocate(),
// which resolves the thread's policy, charges the budget, calls jemalloc, and when that
// fails does what the policy says: fail (NOWAIT), one reclaim pass and one retry
// (normal, NORETRY), retry while reclaim makes progress (RETRY_MAYFAIL), or reclaim,
// wait for frees and retry until it succeeds (NOFAIL). Failure is NULL with errno set
// (ENOMEM; EINVAL for a bad alignment) and, unless NOWARN, a rate-limited report.
#pragma once

#include <stddef.h>

#include "backend.h"
#include "budget.h"
#include "flags.h"
#include "gate.h"
#include "options.h"
#include "region.h"
#include "resolve.h"
#include "reserve.h"
#include "thread_state.h"

namespace allocscope {

// One call, as an entry point describes it: the name, size and caller always, the rest
// by name where it applies (jemalloc's static_opts_t does the same for its entry points):
//   Request r("calloc", bytes, caller);
//   r.call = ALLOCSCOPE_ZERO;
struct Request {
  Request(const char *name, size_t size, const void *callsite)
      : name(name), size(size), callsite(callsite) {}

  const char *name;      // the entry point, for reports: "malloc", "operator new", ...
  size_t size;           // bytes wanted (calloc: n * size, already checked)
  const void *callsite;  // return address of the entry point
  size_t align = 0;      // 0 = the default alignment
  void *old = nullptr;   // realloc: the block to resize (never NULL here)
  Flags call = 0;        // call-site flags (ALLOCSCOPE_ZERO included)
  int jemalloc_flags = 0;  // extra mallocx flags (arena, tcache) from mallocx callers
};

void *allocate(const Request &r);

// The policy a call with these call-site flags follows on thread t: the resolution table
// (resolve.h) over its scope, the rules for its caller and the default policy. (The
// engine adds its conflict report and nofail_max's demotion.)
Policy thread_policy(const ThreadState &t, Flags call, const void *callsite);

// Larger requests fail in the engine (max_size, by default what the kernel would back).
inline bool within_max_size(size_t size) {
  return size <= g_config.max_size.load(std::memory_order_relaxed);
}

// In the engaged paths: may an allocation of `size` be a plain jemalloc call, going to
// allocate() only if that fails? Not while faults may be injected, not above max_size,
// not on an exiting thread, not if a reserve may serve it or the atomic reserve must be
// refilled, not if kv sends it straight to a region, nor if a limit is set and it exceeds
// the thread's allowance.
inline bool may_skip_engine(size_t size) {
  if (AS_LIKELY(gate::is_checked(size))) return true;  // nothing but failure handling
  const uint32_t bits = gate::bits();
  if (bits & (gate::kFaults | gate::kRefill | gate::kForeign)) return false;
  if (!within_max_size(size)) return false;
  const ThreadState &t = t_state;
  if ((bits & gate::kExiting) && t.budget.exiting) return false;
  if ((bits & gate::kReserveScope) && (t.scope.flags & ALLOCSCOPE_RESERVE)) return false;
  if ((bits & gate::kAtomicReserve) &&
      ((t.scope.flags & ALLOCSCOPE_NOWAIT) || gate::nowait_everywhere()))
    return false;
  if ((bits & gate::kKvToRegion) &&
      size >= g_config.kv_to_region_from.load(std::memory_order_relaxed))
    return false;
  return !(bits & gate::kLimit) || budget::take_from_allowance(t_state, size);
}

// A thread in a RESERVE scope is served by its reserve with no policy to resolve
// (RESERVE only adds to the policy), for small requests the reserve surely covers
// (reserve.h). nullptr: not in such a scope, or not such a request.
inline void *from_reserve_scope_fast(size_t size) {
  ThreadState &t = t_state;
  if (!(t.scope.flags & ALLOCSCOPE_RESERVE) || t.in_engine != 0) return nullptr;
  return reserve::take_fast(t, size);
}

// The engaged half of malloc and operator new, before the engine: the reserve of a
// RESERVE scope, else a plain jemalloc call when may_skip_engine() allows it. nullptr:
// call the engine (allocate(), which serves RESERVE requests from the reserve first).
inline void *malloc_before_engine(size_t size) {
  if (gate::bits() & gate::kReserveScope)
    if (void *p = from_reserve_scope_fast(size)) return p;
  if (may_skip_engine(size)) {
    void *p = je_malloc(size);
    if (AS_LIKELY(p != nullptr)) return p;
  }
  return nullptr;
}

// Usable size of any pointer the preload handed out (region or jemalloc block).
inline size_t usable_size(const void *p) {
  return region::contains(p) ? region::usable_size(p) : je_malloc_usable_size(const_cast<void *>(p));
}

// allocscope_reserve(): adds `bytes` to the calling thread's reserve under its policy
// (it may reclaim, wait or fail). 0, or ENOMEM (reported).
int make_reserve(size_t bytes);

// free() when gate::free_is_direct() said no: releases a region, or joins the limit and
// frees (je_dallocx with jemalloc_flags); wakes NOFAIL waiters.
void release(void *p, int jemalloc_flags = 0) noexcept;
// Sized variant for sized delete and sdallocx.
void release_sized(void *p, size_t size, int jemalloc_flags) noexcept;
// xallocx when engaged: grows in place only as far as the budget allows (a region does
// not grow in place through xallocx: it reports its size).
size_t resize_in_place(void *p, size_t size, size_t extra, int jemalloc_flags);

}  // namespace allocscope
