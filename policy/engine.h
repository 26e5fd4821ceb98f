// engine.h: the slow path every entry point falls back to.
//
// An entry point calls jemalloc directly while is_direct(size) holds and jemalloc
// succeeds. Otherwise it describes the call as a Request and hands it to allocate(),
// which resolves the thread's policy, charges the budget, calls jemalloc, and when that
// fails does what the policy says: fail (NOWAIT), one reclaim pass and one retry
// (normal, NORETRY), retry while reclaim makes progress (RETRY_MAYFAIL), or reclaim,
// wait for frees and retry until it succeeds (NOFAIL). Failure is NULL with errno set
// (ENOMEM; EINVAL for a bad alignment) and, unless NOWARN, a rate-limited report.
#pragma once

#include <stddef.h>

#include "budget.h"
#include "config.h"
#include "backend.h"
#include "flags.h"
#include "region.h"
#include "reserve.h"
#include "thread_state.h"

namespace allocscope {

struct Request {
  const char *name;     // the entry point, for reports: "malloc", "operator new", ...
  size_t size;          // bytes wanted (calloc: n * size, already checked)
  size_t align = 0;     // 0 = the default alignment
  void *old = nullptr;  // realloc: the block to resize (never NULL here)
  Flags call = 0;       // call-site flags (ALLOCSCOPE_ZERO included)
  int jemalloc_flags = 0;          // extra mallocx flags (arena, tcache) from mallocx callers
  const void *callsite = nullptr;  // return address of the entry point
};

void *allocate(const Request &r);

extern std::atomic<bool> g_nowait_everywhere AS_HIDDEN;  // see update_engagement()

// Might a reserve serve this thread's allocations (kEngagedReserves is set)? Its scope
// has RESERVE, or NOWAIT while the atomic reserve is on (or NOWAIT is the default).
inline bool reserve_applies(const ThreadState &t) {
  return (t.scope & (ALLOCSCOPE_RESERVE | ALLOCSCOPE_NOWAIT)) ||
         g_nowait_everywhere.load(std::memory_order_relaxed);
}

// In the engaged paths: may an allocation of `size` be a plain jemalloc call, going to
// allocate() only if that fails? Not while faults may be injected, not if a reserve may
// serve it or must be refilled, not if kv_direct sends it to a region, nor if a limit is
// set and it exceeds the thread's allowance.
inline bool may_skip_engine(size_t size) {
  const uint32_t bits = engaged_bits();
  // Every allocation is a fault candidate; or the atomic reserve needs a refill.
  if (bits & (kEngagedFaults | kEngagedRefill)) return false;
  if ((bits & kEngagedReserves) && reserve_applies(t_state)) return false;
  if ((bits & kEngagedKvDirect) && size >= g_config.kv_direct.load(std::memory_order_relaxed))
    return false;
  return !(bits & kEngagedLimit) || budget::take_from_allowance(t_state, size);
}

// A thread in a RESERVE scope is served by its reserve with no policy to resolve
// (RESERVE only adds to the policy), for small requests the reserve surely covers
// (reserve.h). nullptr: not in such a scope, or not such a request.
inline void *from_reserve_scope_fast(size_t size) {
  ThreadState &t = t_state;
  if (!(t.scope & ALLOCSCOPE_RESERVE) || t.in_engine != 0) return nullptr;
  return reserve::take_fast(t, size);
}

// The engaged half of malloc and operator new, before the engine: the reserve of a
// RESERVE scope, else a plain jemalloc call when may_skip_engine() allows it. nullptr:
// call the engine (allocate(), which serves RESERVE requests from the reserve first).
inline void *malloc_before_engine(size_t size) {
  if (engaged_bits() & kEngagedReserves)
    if (void *p = from_reserve_scope_fast(size)) return p;
  if (may_skip_engine(size)) {
    void *p = je_malloc(size);
    if (AS_LIKELY(p != nullptr)) return p;
  }
  return nullptr;
}

// May a free be a plain jemalloc call? Yes unless regions exist or a NOFAIL allocation
// waits to be woken.
inline bool free_is_direct() { return !(engaged_bits() & kFreeBits); }

// May a realloc to `size` be a plain jemalloc call? When nothing in kReallocBits is
// engaged and the new size is one malloc could hand to jemalloc directly (what it adds to
// the thread's count is at most that). Anything else may need a region, a charge or a
// wake-up.
inline bool realloc_is_direct(size_t size) {
  return !(engaged_bits() & kReallocBits) && is_direct(size);
}

// Does a resize have to go through the engine to charge its growth?
inline bool limit_is_set() { return engaged_bits() & kEngagedLimit; }

// Usable size of any pointer the preload handed out (region or jemalloc block).
inline size_t usable_size(const void *p) {
  return region::contains(p) ? region::usable_size(p) : je_malloc_usable_size(const_cast<void *>(p));
}

// Recomputes kEngagedOnFailure, kEngagedKv, kEngagedKvDirect and kEngagedReserves from
// the default policy, the rules, the reclaimer count, the threads whose scope has
// NOFAIL/RETRY_MAYFAIL, KV, RESERVE or NOWAIT, kv_direct and nowait_reserve.
void update_engagement();
// A thread's scope gained (+1) or lost (-1) NOFAIL/RETRY_MAYFAIL, KV, RESERVE, NOWAIT.
struct ScopeDeltas {
  int failure, kv, reserve, nowait;
};
void count_scopes(const ScopeDeltas &deltas);

// allocscope_reserve(): adds `bytes` to the calling thread's reserve under its policy
// (it may reclaim, wait or fail). 0, or ENOMEM (reported).
int make_reserve(size_t bytes);

// free() when free_is_direct() said no: releases a region, or joins the limit and frees
// (je_dallocx with jemalloc_flags); wakes NOFAIL waiters.
void release(void *p, int jemalloc_flags = 0) noexcept;
// Sized variant for sized delete and sdallocx.
void release_sized(void *p, size_t size, int jemalloc_flags) noexcept;
// xallocx when engaged: grows in place only as far as the budget allows (a region does
// not grow in place through xallocx: it reports its size).
size_t resize_in_place(void *p, size_t size, size_t extra, int jemalloc_flags);

// Starts the engine: config, thread-exit and fork handlers. Called once at start-up.
void start_engine();

}  // namespace allocscope
