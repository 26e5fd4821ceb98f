// thread_state.h: what allocscope keeps per thread, and the fast-path test.
//
// All of it is one plain struct in initial-exec TLS: no constructor, no destructor, no
// allocation on first access (dynamic TLS would allocate, from inside malloc). A thread
// that exits gives back what it holds through a pthread key destructor (budget.cc).
#pragma once

#include <stdint.h>

#include <atomic>

#include "flags.h"

namespace allocscope {

struct ThreadState {
  // Scope flags in force on this thread (allocscope_save/clear/restore).
  Flags scope;
  // The scope bits that matter even when an allocation succeeds; 0 keeps the thread on
  // the fast path. (NOFAIL, NOWAIT and the rest only matter once an allocation fails.)
  Flags engaged;
  // Nesting depth of saves and clears; cookies carry it so restores can be checked.
  uint32_t depth;
  // > 0 while allocscope's own code runs on this thread: its allocations bypass policy.
  uint32_t in_engine;

  // Budget (budget.cc). jemalloc counts every byte this thread allocates and frees
  // (thread.allocatedp/deallocatedp); the thread has charged the global budget up to a
  // net of credit_end bytes, so it may allocate without touching shared state while its
  // net stays below that.
  const uint64_t *allocated;
  const uint64_t *deallocated;
  int64_t credit_end;
  uint32_t budget_generation;  // which limit credit_end belongs to (0 = none yet)
  bool exited;                 // the key destructor ran: stop charging

  // Id of the reclaimer running on this thread (0 = none), so it can remove itself.
  int running_reclaimer;
};

extern __thread ThreadState t_state __attribute__((tls_model("initial-exec")));

// Process-wide reasons why every allocation must go through the engine, even when it
// succeeds. 0 means none: the fast path is then one jemalloc call.
enum EngagedBits : uint32_t {
  kEngagedLimit = 1u << 0,  // a memory limit is set: allocations are charged
};
extern std::atomic<uint32_t> g_engaged;

// The test every entry point makes before calling jemalloc directly. Two loads and a
// branch: the thread's engaged scope bits and the process-wide bits.
inline bool on_fast_path() {
  return (t_state.engaged | g_engaged.load(std::memory_order_relaxed)) == 0;
}

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
