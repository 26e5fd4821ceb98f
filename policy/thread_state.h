// thread_state.h: what allocscope keeps per thread, and the fast-path test.
//
// All of it is one plain struct in initial-exec TLS: no constructor, no destructor, no
// allocation on first access (dynamic TLS would allocate, from inside malloc). A thread
// that exits gives back what it holds through a pthread key destructor (engine.cc).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "flags.h"

namespace allocscope {

struct ThreadState {
  // Scope flags in force on this thread (allocscope_save/clear/restore).
  Flags scope;
  // Nesting depth of saves and clears; cookies carry it so restores can be checked.
  uint32_t depth;
  // > 0 while allocscope's own code runs on this thread: its allocations bypass policy.
  uint32_t in_engine;

  // Budget (budget.cc), while a limit is set. jemalloc counts every byte this thread
  // allocates and frees (thread.allocatedp/deallocatedp); `left` is the allowance it may
  // still allocate without asking; the rest is for the refill, which sums all threads.
  int64_t left;
  uint32_t budget_generation;  // the limit this thread has joined (0 = none)
  bool exited;                 // the thread-exit handler ran: stop charging
  const uint64_t *allocated;
  const uint64_t *deallocated;
  int64_t net_at_join;   // allocated - deallocated when it joined
  int64_t net_at_check;  // ... at its latest activity callback (budget.cc)
  ThreadState *next_joined;
  ThreadState *prev_joined;

  // Id of the reclaimer running on this thread (0 = none), so it can remove itself.
  int running_reclaimer;
  // This thread's scope has NOFAIL or RETRY_MAYFAIL / KV: it counts in
  // kEngagedOnFailure / kEngagedKv.
  bool failure_scope;
  bool kv_scope;
  // ... RESERVE / NOWAIT: they count in kEngagedReserves.
  bool reserve_scope;
  bool nowait_scope;

  // The thread's reserve (reserve.h): bytes still unused, charged to the budget (budget
  // sums read it like `left`), and what was reserved in all.
  int64_t reserve_left;
  size_t reserve_size;
  bool reserve_exhausted;  // reported once per reserve

  // The thread-exit handler is armed (watch_thread_exit).
  bool exit_watched;

  // Fault injection (fault.cc): allocscope_fail_nth's countdown (0 = off or done), and
  // allocscope_fault_mark for fault.threads:marked.
  unsigned fail_nth;
  bool fault_marked;
};

// Hidden: references inside the preload then need no GOT indirection.
#define AS_HIDDEN __attribute__((visibility("hidden")))

extern __thread ThreadState t_state AS_HIDDEN __attribute__((tls_model("initial-exec")));

// Reasons why an allocation cannot be just a tail call into jemalloc. With none, the
// entry points are one test and a jump; a jemalloc failure is then jemalloc's own (NULL,
// ENOMEM), with no reclaim pass and no report, because nothing asked for either.
enum EngagedBits : uint32_t {
  // A memory limit is set: allocations above kLimitDirectMax check the thread's credit,
  // and while the limit is near all do (budget.h).
  kEngagedLimit = 1u << 0,
  // Failures need the engine: the default policy or some thread's scope has NOFAIL or
  // RETRY_MAYFAIL, or reclaimers are registered. Successes still cost nothing extra.
  // Process-wide even for a thread's scope: the fast path then reads one global word,
  // not a thread-local one too, and other threads only pay a NULL check meanwhile.
  kEngagedOnFailure = 1u << 1,
  // A NOFAIL allocation is waiting for memory: frees wake it (budget.h).
  kEngagedWaiters = 1u << 2,
  // KV is in the default policy or some thread's scope: a realloc growing past
  // kv_threshold may move its block to a region.
  kEngagedKv = 1u << 3,
  // ... and kv_direct is set: large allocations go straight to regions.
  kEngagedKvDirect = 1u << 4,
  // Regions exist: frees must tell region pointers from jemalloc's.
  kEngagedRegions = 1u << 5,
  // Fault injection can fail allocations, or call sites are being recorded (fault.h).
  kEngagedFaults = 1u << 6,
  // A reserve may serve allocations: some thread's scope has RESERVE, or nowait_reserve
  // is set and NOWAIT is in some scope, the default policy or the rules (reserve.h).
  kEngagedReserves = 1u << 7,
  // The atomic reserve fell below half: the next ordinary allocation refills it.
  kEngagedRefill = 1u << 8,
  // The limit is near: less room is left under it than every thread may allocate
  // between two of its checks (budget.h). Every allocation then takes from its thread's
  // allowance.
  kEngagedLimitNear = 1u << 9,
  // A std::new_handler is installed (new_delete.cc). Only plain operator new reads it,
  // through new_direct_max: jemalloc's own operator new, which it otherwise jumps to,
  // would turn the handler's exception into a plain std::bad_alloc.
  kEngagedNewHandler = 1u << 10,
};

// What each kind of entry point cannot ignore. Allocation: the limit, failure handling,
// kv_direct, fault injection, reserves. Free: waiters to wake, regions (a limit needs
// nothing from a free: jemalloc counts the bytes freed). Realloc: all but a limit, which
// its size test (is_direct) covers, and a new_handler, which concerns plain new only.
inline constexpr uint32_t kAllocBits = kEngagedLimit | kEngagedLimitNear | kEngagedOnFailure |
                                       kEngagedKvDirect | kEngagedFaults | kEngagedReserves |
                                       kEngagedRefill;
inline constexpr uint32_t kFreeBits = kEngagedWaiters | kEngagedRegions;
inline constexpr uint32_t kReallocBits = ~(kEngagedLimit | kEngagedNewHandler);

// Sets and clears engaged bits, and keeps the gate words (below) in step with them.
// Lock-free (the premapped arena's hooks call it from inside jemalloc).
void change_engaged(uint32_t set, uint32_t clear);

inline constexpr size_t kLimitDirectMax = 32 << 10;

// The words the entry points read, on one cache line:
//   - engaged: the EngagedBits in force;
//   - direct_max: the largest request an allocation entry point hands straight to
//     jemalloc: every size while nothing in kAllocBits is engaged; kLimitDirectMax while
//     only a limit is, and it is not near (budget.h: jemalloc's own per-thread counters
//     and events keep such small allocations under it); none otherwise;
//   - new_direct_max: the same for plain operator new, and none while a new_handler is
//     installed.
// Derived from `engaged` by change_engaged().
inline size_t direct_max_for(uint32_t bits) {
  const uint32_t alloc = bits & kAllocBits;
  if (alloc == 0) return SIZE_MAX;
  return alloc == kEngagedLimit ? kLimitDirectMax : 0;
}
inline size_t new_direct_max_for(uint32_t bits) {
  return bits & kEngagedNewHandler ? 0 : direct_max_for(bits);
}
struct alignas(64) EntryGate {
  std::atomic<uint32_t> engaged{0};
  std::atomic<size_t> direct_max{SIZE_MAX};
  std::atomic<size_t> new_direct_max{SIZE_MAX};
};
extern EntryGate g_gate AS_HIDDEN;

// The test every allocation entry point makes first: one compare with a global word and a
// branch. `size` is what the allocation may add to jemalloc's count (its usable size is
// at most that, rounded to a size class).
inline bool is_direct(size_t size) {
  return size <= g_gate.direct_max.load(std::memory_order_relaxed);
}
// Plain operator new's test (new_delete.cc).
inline bool new_is_direct(size_t size) {
  return size <= g_gate.new_direct_max.load(std::memory_order_relaxed);
}
inline uint32_t engaged_bits() { return g_gate.engaged.load(std::memory_order_relaxed); }

// What an aligned block may add to jemalloc's count, for is_direct(): at most size + align
// (SIZE_MAX when that overflows).
inline size_t aligned_bound(size_t size, size_t align) {
  size_t bound;
  return __builtin_add_overflow(size, align, &bound) ? SIZE_MAX : bound;
}

// Arms the exit handler for t, the calling thread's state (engine.cc): when the thread
// exits, the scope counts it holds are dropped, its reserve is released and it leaves the
// budget. Armed by whatever gives the thread something to give back.
void watch_thread_exit(ThreadState &t);

// Marks the calling thread as running allocscope code for the lifetime of the object:
// allocations it makes meanwhile go straight to jemalloc.
class EngineGuard {
 public:
  EngineGuard() { ++t_state.in_engine; }
  ~EngineGuard() { --t_state.in_engine; }
  EngineGuard(const EngineGuard &) = delete;
  EngineGuard &operator=(const EngineGuard &) = delete;
};

}  // namespace allocscope
