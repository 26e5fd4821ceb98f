// gate.h: the entry gate: may an entry point hand a call straight to jemalloc?
//
// Words (they mean one thing each, everywhere in the tree):
//   direct     an entry point calls jemalloc itself, as a tail call: no engine, no
//              policy, no accounting. The opposite is "engaged".
//   engaged    a gate bit is set: something is in force that some entry point cannot
//              ignore (a limit, a policy that acts on failure, regions, ...).
//   engine     the slow path (engine.h): resolves the policy, charges the budget,
//              retries, reports.
//   region     a kv mmap region (region.h). kv_to_region_from (the kv_direct key) sends
//              large KV allocations straight to a region.
//   reserve    a thread's reserve (allocscope_reserve, reserve.h). The atomic reserve
//              (nowait_reserve, atomic_reserve.h) is always named in full. A pool keeps
//              elements "held back"; PROT_NONE address space is a "window" (sys.h).
//   limit      the budget's cap (budget.h); it is "near" when every allocation must be
//              checked against it.
//
// The gate is one cache line of words the entry points read (EntryGate), derived from the
// engaged bits below. The bits are owned here; modules publish their state into the gate
// (a limit set, regions made, reclaimers registered, a scope entered) and the gate decides
// which bits that engages. Entry points (preload/) test only the named predicates at the
// end of this file, never a bit.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "compiler.h"
#include "flags.h"
#include "thread_state.h"

namespace allocscope {
namespace gate {

// Why an allocation cannot be just a tail call into jemalloc. With none, the entry points
// are one test and a jump; a jemalloc failure is then jemalloc's own (NULL, ENOMEM), with
// no reclaim pass and no report, because nothing asked for either.
// When you add a bit: its name in kBitNames (gate.cc), and the masks below that need it.
enum Bit : uint32_t {
  // A memory limit is set: allocations above kLimitDirectMax are checked against the
  // thread's allowance, and while the limit is near all are (budget.h).
  kLimit = 1u << 0,
  // Failures need the engine: the default policy, a rule or some thread's scope has
  // NOFAIL or RETRY_MAYFAIL, or reclaimers are registered. Successes still cost nothing
  // extra. Process-wide even for one thread's scope: the fast path then reads one global
  // word, not a thread-local one too, and other threads only pay a NULL check meanwhile.
  kOnFailure = 1u << 1,
  // A NOFAIL allocation is waiting for memory: frees must wake it (budget.h).
  kWaiters = 1u << 2,
  // KV is in the default policy, a rule or some thread's scope: a realloc growing past
  // kv_threshold may move its block to a region.
  kKv = 1u << 3,
  // ... and kv_to_region_from is set: large allocations go straight to regions.
  kKvToRegion = 1u << 4,
  // Regions exist: frees must tell region pointers from jemalloc's.
  kRegions = 1u << 5,
  // Fault injection can fail allocations, or call sites are being recorded (fault.h).
  kFaults = 1u << 6,
  // Some thread's scope has RESERVE: its reserve serves those allocations (reserve.h).
  kReserveScope = 1u << 7,
  // The atomic reserve is on and NOWAIT is in some scope, the default policy or a rule:
  // NOWAIT allocations come from it (atomic_reserve.h).
  kAtomicReserve = 1u << 8,
  // The atomic reserve fell below half: the next ordinary allocation refills it.
  kRefill = 1u << 9,
  // The limit is near: less room is left under it than every thread may allocate
  // between two of its checks (budget.h). Every allocation then takes from its thread's
  // allowance.
  kLimitNear = 1u << 10,
  // A std::new_handler is installed (new_delete.cc). Only plain operator new reads it:
  // jemalloc's own operator new, which it otherwise jumps to, would turn the handler's
  // exception into a plain std::bad_alloc.
  kNewHandler = 1u << 11,
  // A thread is past its exit handler but still running (later key destructors, glibc's
  // thread cleanup): its allocations and frees must be charged as they happen (budget.h).
  kExiting = 1u << 12,
  // The process's malloc is not ours (another allocator comes first): every entry point
  // passes calls through to what the process would use without allocscope (foreign.h).
  kForeign = 1u << 13,
  kBitCount = 14
};

// What each kind of entry point cannot ignore. Allocation: the limit, failure handling,
// kv's straight-to-region sizes, fault injection, reserves. Free: waiters to wake,
// regions (a limit needs nothing from a free: jemalloc counts the bytes freed).
// Realloc: all but a limit, which its size test covers, and a new_handler, which concerns
// plain new only. A thread exiting: everything (budget.h).
inline constexpr uint32_t kAllocBits = kLimit | kLimitNear | kOnFailure | kKvToRegion |
                                       kFaults | kReserveScope | kAtomicReserve | kRefill |
                                       kExiting | kForeign;
inline constexpr uint32_t kFreeBits = kWaiters | kRegions | kExiting | kForeign;
inline constexpr uint32_t kReallocBits = ~(kLimit | kNewHandler);
// What stops an engaged realloc from trying jemalloc before the engine: only failure
// handling and waiters allow it (the engine then runs only when jemalloc failed).
inline constexpr uint32_t kReallocEngineFirstBits =
    kLimit | kKv | kRegions | kFaults | kReserveScope | kAtomicReserve | kRefill | kExiting |
    kForeign;
// What stops xallocx from being direct: a limit (growth must be charged) or regions
// (which do not grow in place through xallocx).
inline constexpr uint32_t kResizeInPlaceBits = kLimit | kRegions | kForeign;

// The largest request an allocation may hand straight to jemalloc while only a far limit
// is engaged (budget.h: jemalloc's own per-thread counters and events keep such small
// allocations under it).
inline constexpr size_t kLimitDirectMax = 32 << 10;

// The words the entry points read, on one cache line:
//   - engaged: the bits in force;
//   - direct_below: requests smaller than it an allocation entry point hands straight to
//     jemalloc: up to max_size while nothing in kAllocBits is engaged; up to
//     kLimitDirectMax (and max_size) while only a limit is, and it is not near; none
//     otherwise, not even 0 bytes (an exclusive bound, so 0 means none);
//   - new_direct_below: the same for plain operator new, and none while a new_handler is
//     installed.
// Derived from `engaged` by change(); AS_DEBUG_ASSERT checks they agree.
struct alignas(64) EntryGate {
  std::atomic<uint32_t> engaged{0};
  std::atomic<size_t> direct_below{SIZE_MAX};
  std::atomic<size_t> new_direct_below{SIZE_MAX};
};
extern EntryGate g_gate AS_HIDDEN;

// max_size (options.h): larger requests take the engine, which fails them, even while
// nothing is engaged.
extern std::atomic<size_t> g_size_cap AS_HIDDEN;

// The exclusive bound that lets sizes up to `max` through (SIZE_MAX: every size but
// SIZE_MAX itself, which jemalloc refuses anyway).
inline size_t up_to(size_t max) { return max == SIZE_MAX ? SIZE_MAX : max + 1; }

inline size_t direct_below_for(uint32_t bits) {
  const uint32_t alloc = bits & kAllocBits;
  const size_t cap = g_size_cap.load(std::memory_order_relaxed);
  if (alloc == 0) return up_to(cap);
  if (alloc != kLimit) return 0;
  return up_to(cap < kLimitDirectMax ? cap : kLimitDirectMax);
}
inline size_t new_direct_below_for(uint32_t bits) {
  return bits & kNewHandler ? 0 : direct_below_for(bits);
}

inline uint32_t bits() { return g_gate.engaged.load(std::memory_order_relaxed); }

// Sets and clears bits, and keeps the gate words in step with them. Lock-free (the
// premapped arena's hooks call it from inside jemalloc).
void change(uint32_t set, uint32_t clear);

// The name of one bit, for the stats ("limit", "on_failure", ...).
const char *bit_name(uint32_t bit);

// ---- State the modules publish; the gate derives kOnFailure, kKv, kKvToRegion,
// kReserveScope and kAtomicReserve from all of it together. ----

void publish_default_policy(Flags policy);  // control.cc: the policy key
void publish_rule_flags(Flags any);         // rules.cc: every flag some rule gives
void publish_reclaimers(int registered);    // reclaim.cc
void publish_kv_to_region(bool set);        // control.cc: kv_direct != 0
void publish_atomic_reserve(bool on);       // atomic_reserve.cc: nowait_reserve != 0
void publish_new_handler(bool installed);   // new_delete.cc: std::set_new_handler
void publish_max_size(size_t max_size);     // control.cc, lifecycle.cc: max_size
void publish_foreign();                     // foreign.cc: another allocator serves

// A thread's scope gained (+1) or lost (-1) NOFAIL/RETRY_MAYFAIL, KV, RESERVE or NOWAIT
// (scope.cc, and thread exit for scopes left open).
struct ScopeDeltas {
  int failure, kv, reserve, nowait;
};
void count_scopes(const ScopeDeltas &deltas);

// NOWAIT is in the default policy or a rule while the atomic reserve is on: then any
// thread's allocation may be NOWAIT, whatever its scope.
bool nowait_everywhere();

// ---- The predicates the entry points use ----

// Every allocation entry point's first test: one compare with a global word and a branch.
// `size` is what the allocation may add to jemalloc's count (its usable size is at most
// that, rounded to a size class).
inline bool is_direct(size_t size) {
  return size < g_gate.direct_below.load(std::memory_order_relaxed);
}
// Plain operator new's test (new_delete.cc).
inline bool new_is_direct(size_t size) {
  return size < g_gate.new_direct_below.load(std::memory_order_relaxed);
}
// May a free be a plain jemalloc call? Yes unless regions exist or a NOFAIL allocation
// waits to be woken.
inline bool free_is_direct() { return !(bits() & kFreeBits); }
// May a realloc to `size` be a plain jemalloc call? When nothing in kReallocBits is
// engaged and the new size is one malloc could hand to jemalloc directly.
inline bool realloc_is_direct(size_t size) { return !(bits() & kReallocBits) && is_direct(size); }
// An engaged realloc: may it try jemalloc first, and the engine only if that fails?
inline bool realloc_tries_jemalloc_first() { return !(bits() & kReallocEngineFirstBits); }
// May xallocx be a plain jemalloc call?
inline bool resize_in_place_is_direct() { return !(bits() & kResizeInPlaceBits); }
// Is a limit (or an arena limit) set?
inline bool limit_is_set() { return bits() & kLimit; }

// What an aligned block may add to jemalloc's count, for is_direct(): at most size + align
// (SIZE_MAX when that overflows).
inline size_t aligned_bound(size_t size, size_t align) {
  size_t bound;
  return __builtin_add_overflow(size, align, &bound) ? SIZE_MAX : bound;
}

}  // namespace gate
}  // namespace allocscope
