// budget.h: the memory limit.
//
// charged = the usable size of every live allocation (jemalloc blocks and regions) plus
// the unused part of every reserve, capped by `limit`. Nothing on the allocation fast
// path touches shared state, and allocations up to gate::kLimitDirectMax usually touch
// nothing:
//   - jemalloc already counts every thread's allocated and freed bytes
//     (thread.allocatedp/deallocatedp), so a free costs the budget nothing at all;
//   - and each time a thread has allocated, or freed, another 64 KiB (kCheckInterval),
//     jemalloc calls the thread's activity callback (experimental.thread.activity_callback,
//     driven by jemalloc 5.3's peak event, outside any lock). The limit is near when
//     less is left under it than every thread may allocate before its next callback:
//     kCheckInterval plus one allocation of gate::kLimitDirectMax (kUncheckedPerThread). An
//     exact sum of what all threads hold decides that, and leaves the rest as a shared
//     "room"; each callback takes from the room what its thread grew since its previous
//     one (one atomic subtraction), and sums exactly again only when the room runs out.
//     While the limit is not near, an allocation of up to gate::kLimitDirectMax is a plain
//     jemalloc call: the limit costs the fast path nothing. Larger ones, and all of them
//     once the limit is near (gate::kLimitNear), are checked:
//   - a checked allocation takes its size from an allowance ("left") the thread may
//     allocate without asking: a compare and a subtract in the thread's own TLS. When the
//     allowance runs out, the thread refills it (up to kBatch ahead) under one lock, after
//     summing what every thread really holds: its net bytes (from jemalloc's counters)
//     plus its unused allowance. That sum is what the limit caps.
//   - every thread started by pthread_create is known to the budget from its start, and
//     so is the thread that started it (the preload wraps pthread_create); a thread that
//     sets a limit or makes a reserve joins then. So the main thread is known before
//     the process has a second thread or a limit, and what a thread frees counts even if
//     it never allocates. (Joining reads jemalloc's counters through mallctl, whose first
//     use in a process costs ~150,000 instructions: a process that never starts a thread
//     or sets a limit does not pay it.) A thread started some other way (glibc's own
//     helper threads: SIGEV_THREAD timers, POSIX AIO) joins at its first checked
//     allocation; what it allocates and frees before that is not counted.
// So:
//   - the cap holds to within the size-class rounding of one allowance per thread:
//     checked allocations take their requested size from the allowance while jemalloc
//     counts the usable size, so between refills a thread can run over by at most the
//     rounding on kBatch bytes (e.g. 17-byte requests occupy 32 bytes: under 2 x kBatch);
//   - an allocation may fail while other threads hold unused allowance, at most kBatch
//     each; and the limit is near, and every allocation checked, once less than
//     kUncheckedPerThread per known thread is left under it;
//   - allocscope_charged() sums the live bytes of all threads: exact when no other thread
//     is allocating at that moment.
// When a limit is set while none was, the count starts from jemalloc's stats.allocated
// (which also counts blocks cached in thread caches, so it errs on the high side). A
// forked child keeps its parent's other threads' live bytes charged; their allowances go.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "gate.h"
#include "options.h"
#include "thread_state.h"

namespace allocscope {
namespace budget {

inline constexpr int64_t kBatch = 64 << 10;
// How often jemalloc calls a thread's activity callback: every kCheckInterval bytes it
// allocates (and frees). jemalloc 5.3's PEAK_EVENT_WAIT, which it does not export;
// budget_test and preload_limit_test check it.
inline constexpr int64_t kCheckInterval = 64 << 10;
// What a thread may allocate unchecked between two of its checks, while the limit is not
// near: up to kCheckInterval, plus the allocation that crosses it.
inline constexpr int64_t kUncheckedPerThread = kCheckInterval + gate::kLimitDirectMax;

extern std::atomic<uint32_t> g_generation AS_HIDDEN;

// The limit on all charged bytes, and on the jemalloc arena's share of them (regions
// excluded: every arena allocation obeys it, and it is what makes kv's arena attempt fail
// while a region still fits). 0 = none; either one engages the accounting.
void set_limit(size_t bytes);
size_t limit();
void set_arena_limit(size_t bytes);
// limit:cgroup[-HEADROOM]: the limit follows the cgroup's (cgroup_limit.h) less `headroom`
// bytes (UINT64_MAX: 5 %), read now and again while the limit is near, at most every
// 100 ms. `dir`: the test-only cgroup_dir ("" = the process's cgroup). A Refusal (options.h)
// when no cgroup memory controller is visible.
Refusal set_cgroup_limit(uint64_t headroom, const char *dir);
// limit_scope: tree joins the tree ALLOCSCOPE_TREE names, or creates one with the current
// limit (tree_budget.h); process leaves it. A Refusal when the shared budget cannot be
// made or joined (the process keeps its own budget).
Refusal set_tree_scope(bool in_tree);
// At start-up: a process whose environment names a tree joins it, whatever its
// configuration says; a Refusal (reported) if the object is refused, unless the
// configuration's limit_scope:tree already tried. At exit (exit or _exit;
// async-signal-safe): it gives its grant back.
Refusal join_tree_from_environment();
void process_exit();
size_t arena_limit();
void set_emergency(size_t bytes);
size_t emergency();

// Live bytes now. Without a limit nothing is charged and this is jemalloc's count.
size_t charged();

// The peak of the charge and when it was reached (sys::now_ns()), and the charge now as
// last estimated, without a lock (so a signal handler may read them). Taken at every exact
// sum and moved by every activity callback by what its thread grew or shrank (budget.cc):
// within kUncheckedPerThread per thread of the truth, and at no cost to the allocations
// that reach neither (nothing on the fast path). Kept while a limit is set, or once
// watch_threads() was called; otherwise 0.
struct Peak {
  size_t bytes;
  uint64_t at_ns;
};
Peak peak();
size_t charged_estimate();
// Makes every thread (the caller now, the others as they start) install its activity
// callback even with no limit: the peak, the live page and the timeline follow the charge
// through them (control and timeline_file turn it on). Costs each thread one mallctl at
// its start (~3x a bare thread's start and exit in tests/bench/thread_churn, as a limit).
void watch_threads();
bool watching();

// The fast path's check while a limit is set: takes `size` from the thread's allowance if
// it has that much. (No: allocate() calls try_charge, which refills it or fails.) A
// thread that has not joined the current limit has no allowance: setting a limit clears
// every joined thread's.
inline bool take_from_allowance(ThreadState &t, size_t size) {
  if (size > static_cast<uint64_t>(t.budget.left)) return false;
  __atomic_store_n(&t.budget.left, t.budget.left - static_cast<int64_t>(size), __ATOMIC_RELAXED);
  return true;
}

// May the calling thread allocate `size` more bytes now? Refills its allowance if needed.
// `memalloc` lets it use the emergency allowance; `overdraw` ignores the limit.
bool try_charge(ThreadState &t, size_t size, bool memalloc, bool overdraw);

// Bytes charged outside jemalloc (regions): charge before mapping, uncharge after
// unmapping. charge_outside() fails if they do not fit under the limit.
bool charge_outside(size_t bytes, bool memalloc, bool overdraw);
void uncharge_outside(size_t bytes);

// A thread's reserve (reserve.h): charge_reserve() adds `bytes` to t.reserve.left if they
// fit under the limit; an allocation served by the reserve then moves bytes from
// reserve.left to the thread's live bytes without asking (the sum does not change).
// The thread joins the budget's registry even with no limit set, so that a limit set
// later counts its reserve. uncharge_reserve() gives back what is left and returns it.
bool charge_reserve(ThreadState &t, size_t bytes, bool memalloc, bool overdraw);
size_t uncharge_reserve(ThreadState &t);
// The unused reserves of all threads.
size_t reserves_total();

// The jemalloc arena's share of the charge (everything but regions), which arena_limit
// caps: try_charge() and charge_reserve() refuse what would pass it, like the limit.
size_t arena_share();

// Makes the calling thread (t) join the limit in full, if it has not yet: its jemalloc
// counters, its activity callback, its exit handler. set_limit does it for its caller; a
// thread does it at its first checked allocation.
void join(ThreadState &t);
// Makes the calling thread known to the budget: with a limit set, join(); without one, it
// is only registered (linked, with its counters found from the TLS layout, no mallctl),
// so a process with no limit pays nothing per thread but a link under a lock. If a limit
// comes later, threads registered that way have no activity callback yet: the limit
// counts as near until each has made a checked allocation (which installs it), so every
// allocation is checked meanwhile (an idle thread keeps it so: documented in the README).
// The preload's pthread_create calls it for the thread it starts and for the starter.
void know(ThreadState &t);
inline void ensure_joined(ThreadState &t) {
  if (t.budget.generation != g_generation.load(std::memory_order_relaxed)) join(t);
}

// NOFAIL waits: blocks until a free wakes it or `timeout_ns` passes. While anyone waits,
// gate::kWaiters sends frees through wake_waiters(). Cancellation is deferred meanwhile
// (malloc is not a cancellation point).
void wait_for_free(uint64_t timeout_ns);
void wake_waiters();

// The thread is exiting (lifecycle.cc's exit handler, after its reserve went): its live
// bytes stay charged outside any thread and its allowance goes back. While a limit is set
// it stays "exiting" until the kernel says it is gone: later key destructors and glibc's
// thread cleanup still allocate and free on it, and gate::kExiting sends those through
// the engine, which calls exiting_sync() after each to charge what moved. (At most
// 256 threads exit at once that way; a 257th is "exited": what it frees later is not
// credited.)
void thread_exit(ThreadState &t);
void exiting_sync(ThreadState &t);
// Forgets exiting threads that are gone (at most once a millisecond), and takes
// gate::kExiting off when none is left. Called from the engine's allocations and frees
// while the bit is set, and by charged().
void reap_exited();

// Could another thread free memory for a NOFAIL allocation that waits? Not when every
// other thread the budget knows is waiting too (e.g. the only thread of a fork child).
bool others_can_free();
// The preload's pthread_create: a thread is being started (it joins when it runs), or it
// has joined / could not be started.
void thread_expected();
void thread_arrived();

// NOFAIL allocations overdraw the limit (after nofail_overdraw_ms, or when no free can
// come) until the charge is back under it: then they wait again.
void start_overdrawing();
bool overdrawing();

// Fork: the parent holds the budget's lock across fork(); the child drops the other
// threads (their live bytes stay counted) and their waits.
void prefork();
void postfork_parent();
void postfork_child();

}  // namespace budget
}  // namespace allocscope
