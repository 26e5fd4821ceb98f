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

// May an allocation of `size` be a plain jemalloc call, going to allocate() only if that
// fails? Yes unless a limit is set and the size does not fit the thread's credit.
inline bool may_skip_engine(size_t size) {
  return !(engaged_bits() & kEngagedLimit) || budget::fits_in_credit(t_state, size);
}

// Does a free have to settle the budget? Only while a limit is set.
inline bool free_is_engaged() {
  return g_engaged.load(std::memory_order_relaxed) & kEngagedLimit;
}

// Recomputes kEngagedOnFailure from the default policy and the reclaimer count.
void update_failure_engagement();

// free() when the process is engaged (a limit is set): frees (je_dallocx with
// jemalloc_flags), then settles the budget.
void release(void *p, int jemalloc_flags = 0);
// Sized variant for sized delete and sdallocx.
void release_sized(void *p, size_t size, int jemalloc_flags);
// xallocx when engaged: grows in place only as far as the budget allows.
size_t resize_in_place(void *p, size_t size, size_t extra, int jemalloc_flags);

// Starts the engine: config, thread-exit and fork handlers. Called once at start-up.
void start_engine();

}  // namespace allocscope
