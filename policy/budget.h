// budget.h: the memory limit.
//
// charged = the usable size of every live allocation (plus, later, regions and unused
// reserves), capped by `limit`. Threads never contend on one counter per allocation:
// jemalloc already counts each thread's allocated and freed bytes, and a thread charges
// the shared total in batches of kBatch bytes of credit, asking for more only when its
// net allocation would pass the credit it holds, and giving back what it does not use
// once it holds more than 2 x kBatch (at once while someone waits for memory). So:
//   - the cap is conservative: live bytes never exceed the limit by more than one
//     allocation's size-class rounding, but an allocation may fail while up to
//     2 x kBatch per thread is held as unused credit by other threads;
//   - allocscope_charged() settles the calling thread and is exact when no other thread
//     holds credit.
// When a limit is set while none was, the total starts from jemalloc's stats.allocated
// (live bytes, including blocks cached in thread caches, so it errs on the high side).
// A forked child inherits the total, including the credit its parent's other threads
// held; those bytes stay charged in the child.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "thread_state.h"

namespace allocscope {
namespace budget {

inline constexpr int64_t kBatch = 64 << 10;

extern std::atomic<int64_t> g_charged;
extern std::atomic<uint32_t> g_generation;
extern std::atomic<int> g_waiters;

void set_limit(size_t bytes);
size_t limit();
void set_emergency(size_t bytes);
size_t emergency();

// Bytes charged now (settles the calling thread first). Without a limit nothing is
// charged and this is jemalloc's count of live bytes.
size_t charged();

// May the calling thread allocate `size` more bytes now? Charges credit if it needs more.
// `memalloc` lets it use the emergency allowance; `overdraw` ignores the limit.
bool try_charge(ThreadState &t, size_t size, bool memalloc, bool overdraw);

// The lean check made before every allocation while a limit is set: does `size` fit in
// the credit this thread already holds? (No: allocate() charges more, or fails.)
inline bool fits_in_credit(const ThreadState &t, size_t size) {
  return t.budget_generation == g_generation.load(std::memory_order_relaxed) &&
         static_cast<int64_t>(*t.allocated - *t.deallocated + size) <= t.credit_end;
}

// Gives back the thread's unused credit beyond the batch (all of it if `all`) and wakes
// waiters if that lowered the total. Called after frees and reclaim passes.
void settle(ThreadState &t, bool all);

// Brings the thread under the current limit (its existing allocations are already in the
// total). Every path that charges or frees calls this first.
void join(ThreadState &t);
inline void ensure_joined(ThreadState &t) {
  if (t.budget_generation != g_generation.load(std::memory_order_relaxed)) join(t);
}

// After a free on a joined thread: settles when the thread holds more credit than it may
// keep, or someone is waiting.
inline void after_free(ThreadState &t) {
  if (t.exited) return;
  const int64_t net = static_cast<int64_t>(*t.allocated - *t.deallocated);
  if (t.credit_end - net > 2 * kBatch || g_waiters.load(std::memory_order_relaxed) != 0)
    settle(t, false);
}

// Blocks until some thread gives memory back or `timeout_ns` passes.
void wait_for_free(uint64_t timeout_ns);

// Sets up the thread-exit handler. Called once at start-up.
void init();

// Fork: the parent holds the budget's locks across fork(); both sides release them, and
// the child, which has no other threads, forgets their waits.
void prefork();
void postfork_parent();
void postfork_child();

}  // namespace budget
}  // namespace allocscope
