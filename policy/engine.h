// engine.h: the slow path every entry point falls back to.
//
// An entry point calls jemalloc directly while on_fast_path() holds and jemalloc
// succeeds. Otherwise it describes the call as a Request and hands it to allocate(),
// which resolves the thread's policy, charges the budget, calls jemalloc, and when that
// fails does what the policy says: fail (NOWAIT), one reclaim pass and one retry
// (normal, NORETRY), retry while reclaim makes progress (RETRY_MAYFAIL), or reclaim,
// wait for frees and retry until it succeeds (NOFAIL). Failure is NULL with errno set
// (ENOMEM; EINVAL for a bad alignment) and, unless NOWARN, a rate-limited report.
#pragma once

#include <stddef.h>

#include "budget.h"
#include "backend.h"
#include "flags.h"
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

// The entry points' second test, once on_fast_path() said no: with only a limit
// engaged, an allocation that fits the thread's allowance is still a plain jemalloc call.
inline bool limit_only_and_fits(uint32_t bits, size_t size) {
  return bits == kEngagedLimit && budget::take_from_allowance(t_state, size);
}

// In the engaged paths: may an allocation of `size` be a plain jemalloc call, going to
// allocate() only if that fails? Yes unless a limit is set and it exceeds the allowance.
inline bool may_skip_engine(size_t size) {
  return !(engaged_bits() & kEngagedLimit) || budget::take_from_allowance(t_state, size);
}

// May a free be a plain jemalloc call? Yes unless a NOFAIL allocation waits to be woken,
// or a limit is set and this thread has not joined it yet (its frees must be counted).
inline bool free_is_direct() {
  const uint32_t bits = g_engaged.load(std::memory_order_relaxed);
  if (AS_LIKELY(!(bits & (kEngagedLimit | kEngagedWaiters)))) return true;
  return !(bits & kEngagedWaiters) &&
         t_state.budget_generation == budget::g_generation.load(std::memory_order_relaxed);
}

// Does a realloc have to go through the engine to charge its growth?
inline bool limit_is_set() {
  return g_engaged.load(std::memory_order_relaxed) & kEngagedLimit;
}

// Recomputes kEngagedOnFailure from the default policy, the reclaimer count and the
// number of threads whose scope has NOFAIL or RETRY_MAYFAIL.
void update_failure_engagement();
// A thread's scope gained (+1) or lost (-1) NOFAIL/RETRY_MAYFAIL.
void count_failure_scope(int delta);

// free() when free_is_direct() said no: joins the limit, frees (je_dallocx with
// jemalloc_flags), wakes NOFAIL waiters.
void release(void *p, int jemalloc_flags = 0);
// Sized variant for sized delete and sdallocx.
void release_sized(void *p, size_t size, int jemalloc_flags);
// xallocx when engaged: grows in place only as far as the budget allows.
size_t resize_in_place(void *p, size_t size, size_t extra, int jemalloc_flags);

// Starts the engine: config, thread-exit and fork handlers. Called once at start-up.
void start_engine();

}  // namespace allocscope
