// gate.h: the entry gate: may an entry point hand a call straight to jemalloc?
//
// Words (they mean one thing each, everywhere in the tree):
//   direct     an entry point calls jemalloc itself, as a tail call: no engine, no
//              policy, no accounting. The opposite is "engaged".
//   checked    an entry point calls jemalloc and tests its result: the engine sees the
//              request only if jemalloc returned NULL. What failure handling alone
//              costs (kOnFailure).
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

#include "backend.h"
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
  // NOFAIL or RETRY_MAYFAIL, or reclaimers are registered. A success costs a NULL test
  // (checked, above). Process-wide even for one thread's scope: the fast path then reads
  // one global word, not a thread-local one too, and other threads only pay the NULL test
  // meanwhile.
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
  // A sweep run injected a failure and tracks the blocks allocated since (leak_track.h):
  // frees must reach the engine to forget theirs. Never engaged outside fault.events.
  kLeakTrack = 1u << 14,
  kBitCount = 15
};

// What each kind of entry point cannot ignore. Allocation: the limit, failure handling,
// kv's straight-to-region sizes, fault injection, reserves. Free: waiters to wake,
// regions (a limit needs nothing from a free: jemalloc counts the bytes freed), leak
// tracking.
// Realloc: all but a limit, which its size test covers, failure handling, which its NULL
// test covers, and a new_handler, which concerns plain new only. A thread exiting:
// everything (budget.h).
inline constexpr uint32_t kAllocBits = kLimit | kLimitNear | kOnFailure | kKvToRegion |
                                       kFaults | kReserveScope | kAtomicReserve | kRefill |
                                       kExiting | kForeign;
inline constexpr uint32_t kFreeBits = kWaiters | kRegions | kExiting | kForeign | kLeakTrack;
inline constexpr uint32_t kReallocBits = ~(kLimit | kOnFailure | kNewHandler);
// What stops an engaged realloc from trying jemalloc before the engine: only failure
// handling and waiters allow it (the engine then runs only when jemalloc failed).
inline constexpr uint32_t kReallocEngineFirstBits =
    kLimit | kKv | kRegions | kFaults | kReserveScope | kAtomicReserve | kRefill | kExiting |
    kForeign | kLeakTrack;
// What stops xallocx from being direct: a limit (growth must be charged) or regions
// (which do not grow in place through xallocx).
inline constexpr uint32_t kResizeInPlaceBits = kLimit | kRegions | kForeign;

// The largest request an allocation may hand straight to jemalloc while only a far limit
// is engaged (budget.h: jemalloc's own per-thread counters and events keep such small
// allocations under it).
inline constexpr size_t kLimitDirectMax = 32 << 10;

// The entry points' functions the gate's call words point at, other than jemalloc's:
// malloc and plain operator new that test jemalloc's result for NULL before the engine
// sees the request (checked), and free's engaged half. They live in the preload
// (malloc_api.cc, new_delete.cc). Weak: the unit tests link the policy without the preload,
// and there the gate falls back to the engaged paths for what needs them (call words
// that nothing calls through anyway).
using MallocFn = void *(*)(size_t size) noexcept;
using NewFn = void *(*)(size_t size);
using FreeFn = void (*)(void *p) noexcept;
// (malloc_checked is named for the assembly that defines it on x86-64.)
void *malloc_checked(size_t size) noexcept __asm__("allocscope_malloc_checked")
    __attribute__((weak));
void *new_checked(size_t size) __attribute__((weak));
void free_engaged(void *p) noexcept __attribute__((weak));

// The words the entry points read, on one cache line. The bounds are exclusive (0 lets
// no request through, not even 0 bytes; SIZE_MAX every one jemalloc could serve):
//   - engaged: the bits in force;
//   - direct_below: requests smaller than it an allocation entry point hands straight to
//     jemalloc: up to max_size while nothing in kAllocBits is engaged; up to
//     kLimitDirectMax (and max_size) while only a limit is, and it is not near; none
//     otherwise;
//   - checked_below: the same, with failure handling (kOnFailure) not counted: requests
//     smaller than it go to jemalloc, and to the engine only when jemalloc returns NULL
//     (the engaged halves' first test, may_skip_engine);
//   - malloc_call: what malloc calls for requests below checked_below: je_malloc, or
//     malloc_checked while failure handling is engaged. One word and one jump for both,
//     so that failure handling costs a successful malloc a NULL test and no more;
//   - new_below, new_call: the same for plain operator new (jemalloc's own, or
//     new_checked); none while a new_handler is installed;
//   - free_call: what free calls: je_free, or free_engaged while something in kFreeBits
//     is engaged. free makes no test of its own.
// Derived from `engaged` by change() (publish_words); gate_test and engine_races check
// that they agree.
struct alignas(64) EntryGate {
  std::atomic<uint32_t> engaged{0};
  std::atomic<size_t> direct_below{SIZE_MAX};
  std::atomic<size_t> checked_below{SIZE_MAX};
  std::atomic<size_t> new_below{SIZE_MAX};
  std::atomic<MallocFn> malloc_call{je_malloc_noexcept};
  std::atomic<NewFn> new_call{je_operator_new};
  std::atomic<FreeFn> free_call{je_free_noexcept};
};
static_assert(sizeof(EntryGate) == 64, "the gate is one cache line");
extern EntryGate g_gate AS_HIDDEN;

// max_size (options.h): larger requests take the engine, which fails them, even while
// nothing is engaged.
extern std::atomic<size_t> g_size_cap AS_HIDDEN;

// The exclusive bound that lets sizes up to `max` through (SIZE_MAX: every size but
// SIZE_MAX itself, which jemalloc refuses anyway).
inline size_t up_to(size_t max) { return max == SIZE_MAX ? SIZE_MAX : max + 1; }

// Is the preload linked in (the weak functions above defined)?
inline bool entry_calls_linked() { return &malloc_checked != nullptr; }

inline size_t checked_below_for(uint32_t bits) {
  const uint32_t alloc = bits & kAllocBits & ~kOnFailure;
  const size_t cap = g_size_cap.load(std::memory_order_relaxed);
  if (alloc == 0) return up_to(cap);
  if (alloc != kLimit) return 0;
  return up_to(cap < kLimitDirectMax ? cap : kLimitDirectMax);
}
inline size_t direct_below_for(uint32_t bits) {
  return bits & kOnFailure ? 0 : checked_below_for(bits);
}
inline size_t new_below_for(uint32_t bits) {
  if (bits & kNewHandler) return 0;
  return entry_calls_linked() ? checked_below_for(bits) : direct_below_for(bits);
}
inline MallocFn malloc_call_for(uint32_t bits) {
  return (bits & kOnFailure) && entry_calls_linked() ? malloc_checked : je_malloc_noexcept;
}
inline NewFn new_call_for(uint32_t bits) {
  return (bits & kOnFailure) && entry_calls_linked() ? new_checked : je_operator_new;
}
inline FreeFn free_call_for(uint32_t bits) {
  return (bits & kFreeBits) && entry_calls_linked() ? free_engaged : je_free_noexcept;
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

// `size` < `word`, as one compare of the register with the word in memory and a branch:
// the compiler does not fold a load (atomic or volatile) into the compare by itself, and
// the load would be one more instruction on every malloc. A relaxed load either way.
inline bool below(const std::atomic<size_t> &word, size_t size) {
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
  bool is_below;
  asm volatile("cmpq %[word], %[size]" : "=@ccb"(is_below) : [size] "r"(size), [word] "m"(word));
  return is_below;
#else
  return size < word.load(std::memory_order_relaxed);
#endif
}
// No bit of `mask` engaged, as one test of the word in memory and a branch (as below()).
inline bool none_engaged(uint32_t mask) {
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
  bool none;
  asm volatile("testl %[mask], %[word]" : "=@ccz"(none) : [mask] "ri"(mask), [word] "m"(g_gate.engaged));
  return none;
#else
  return !(bits() & mask);
#endif
}

// Every allocation entry point's first test but malloc's and plain new's: one compare
// with a global word and a branch. `size` is what the allocation may add to jemalloc's
// count (its usable size is at most that, rounded to a size class).
inline bool is_direct(size_t size) { return below(g_gate.direct_below, size); }
// The engaged halves' first test: may jemalloc try, the engine following only if it
// returns NULL?
inline bool is_checked(size_t size) { return below(g_gate.checked_below, size); }
// malloc's test, and what it then calls (malloc_api.cc).
inline bool malloc_is_direct(size_t size) { return below(g_gate.checked_below, size); }
inline MallocFn malloc_call() { return g_gate.malloc_call.load(std::memory_order_relaxed); }
// Plain operator new's (new_delete.cc).
inline bool new_is_direct(size_t size) { return below(g_gate.new_below, size); }
inline NewFn new_call() { return g_gate.new_call.load(std::memory_order_relaxed); }
// What free calls; the other frees (sized, dallocx) test free_is_direct(): a plain
// jemalloc call unless regions exist or a NOFAIL allocation waits to be woken.
inline FreeFn free_call() { return g_gate.free_call.load(std::memory_order_relaxed); }
inline bool free_is_direct() { return none_engaged(kFreeBits); }
// Is failure handling engaged (a checked call that got NULL must then go to the engine)?
inline bool failure_handled() { return bits() & kOnFailure; }
// May a realloc to `size` go to jemalloc, the engine following only if it fails (and
// failure_handled())? When nothing in kReallocBits is engaged and the new size is one
// malloc could hand to jemalloc.
inline bool realloc_is_direct(size_t size) { return none_engaged(kReallocBits) && is_checked(size); }
// An engaged realloc: may it try jemalloc first, and the engine only if that fails?
inline bool realloc_tries_jemalloc_first() { return !(bits() & kReallocEngineFirstBits); }
// May xallocx be a plain jemalloc call?
inline bool resize_in_place_is_direct() { return !(bits() & kResizeInPlaceBits); }
// Is a limit (or an arena limit) set?
inline bool limit_is_set() { return bits() & kLimit; }
// Another allocator serves malloc: the preload passes its functions through (foreign.h).
inline bool foreign_allocator() { return bits() & kForeign; }

// What an aligned block may add to jemalloc's count, for is_direct(): at most size + align
// (SIZE_MAX when that overflows).
inline size_t aligned_bound(size_t size, size_t align) {
  size_t bound;
  return __builtin_add_overflow(size, align, &bound) ? SIZE_MAX : bound;
}

}  // namespace gate
}  // namespace allocscope
