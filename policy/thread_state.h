// thread_state.h: what allocscope keeps per thread.
//
// One plain struct in initial-exec TLS: no constructor, no destructor, no allocation on
// first access (dynamic TLS would allocate, from inside malloc). Each module owns one
// member, declared here so that the struct is one object (jemalloc's tsd composes its
// modules' per-thread data the same way); the module's header says what the fields mean.
// A thread that exits gives back what it holds through lifecycle.cc's exit handler.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "compiler.h"
#include "flags.h"

namespace allocscope {

struct ThreadState;
namespace fault {
struct CheckedThread;
}

// scope.cc: allocscope_save/clear/restore.
struct ScopeThread {
  Flags flags;     // the scope flags in force on this thread
  uint32_t depth;  // nesting depth of saves and clears; cookies carry it
  uint32_t tag;    // the thread's tag in its cookies (0 until its first save)
  // What this thread counts for in the gate's scope counts (gate.h: count_scopes).
  bool failure, kv, reserve, nowait;
};

// budget.cc: the thread's share of the limit. jemalloc counts every byte the thread
// allocates and frees (allocated/deallocated point at its counters).
struct BudgetThread {
  int64_t left;         // allowance it may still allocate without asking
  uint32_t generation;  // the limit it has joined (0 = none)
  bool exited;          // it has left the budget for good: charge nothing more
  bool exiting;         // past its exit handler, still running destructors (budget.cc)
  bool callback;        // its jemalloc activity callback is installed
  bool uncounted;       // counted in budget.cc's g_without_callback
  const uint64_t *allocated;
  const uint64_t *deallocated;
  int64_t net_at_join;   // allocated - deallocated when it joined
  int64_t net_at_check;  // ... at its latest activity callback
  ThreadState *next;     // the registry of joined threads
  ThreadState *prev;
};

// reserve.cc: the thread's reserve. `left` is charged to the budget (its sums read it).
struct ReserveThread {
  int64_t left;      // bytes still unused
  size_t size;       // reserved in all (0 = none)
  bool exhausted;    // reported once per reserve
};

// fault.cc: allocscope_fail_nth's countdown (0 = off or done) and allocscope_fault_mark;
// the failure check the thread is attached to (fault.h: CheckedThread, check.h).
struct FaultThread {
  unsigned fail_nth;
  bool marked;
  uint32_t check_generation;
  fault::CheckedThread *check;
};

struct ThreadState {
  // > 0 while allocscope's own code runs on this thread: its allocations bypass policy.
  uint32_t in_engine;
  ScopeThread scope;
  BudgetThread budget;
  ReserveThread reserve;
  FaultThread fault;
  // reclaim.cc: the reclaimer running on this thread (0 = none), so it can remove itself.
  int running_reclaimer;
  // lifecycle.cc: the thread-exit handler is armed.
  bool exit_watched;
};

extern __thread ThreadState t_state AS_HIDDEN __attribute__((tls_model("initial-exec")));

// Arms the exit handler for t, the calling thread's state: when the thread exits, the
// handler lifecycle.cc set gives back what the thread holds (its scope counts, its
// reserve, its share of the budget). Armed by whatever gives the thread something to give
// back. (The handler is set through set_thread_exit_handler at start-up; a thread armed
// before that, by another library's constructor, is handled if it exits after it.)
void watch_thread_exit(ThreadState &t);
void set_thread_exit_handler(void (*handler)(ThreadState &));

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
