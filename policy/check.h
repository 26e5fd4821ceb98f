// check.h: failure checks (shim/allocscope_testing.h): fail each allocation a function
// makes, one at a time, in the calling process, and count what the function did about
// it: returned an error, succeeded anyway, crashed (in a fork child), left bytes live.
//
// A check claims a Run (at most kMaxRuns at once in a process). Each run of fn attaches
// the threads taking part to a Slot of the Run (fault.h: CheckedThread), which inject()
// counts and fails through; jemalloc's per-thread counters (thread.allocatedp and
// deallocatedp, as the budget reads them) give each thread's bytes, and the engine adds
// kv region bytes. With ALLOCSCOPE_CHECK_ALL_THREADS the preload's pthread_create makes
// the threads fn starts take part too: thread_starting() on the creator, thread_started()
// first thing on the new thread, thread_exit() from the exit handler (lifecycle.cc).
//
// The contract, the leak rule and the limits are at the top of allocscope_testing.h; this
// module implements them and says here only how.
#pragma once

#include <stdint.h>

#include "allocscope_testing.h"
#include "fault.h"
#include "thread_state.h"

namespace allocscope {
namespace check {

// allocscope_check_failures_each.
int run(int (*fn)(void *), void *arg, unsigned flags, allocscope_check_report *report,
        allocscope_check_each_fn each, void *each_arg);

// What a thread being started inherits from its creator: nothing (parent nullptr) unless
// the creator runs inside a check with ALLOCSCOPE_CHECK_ALL_THREADS.
struct Inheritance {
  fault::CheckedThread *parent;
  uint32_t generation;  // the parent's run, as it was when the thread was started
  unsigned ordinal;     // the new thread is the parent's ordinal-th start in this run
};
// On the creating thread t, before the thread is started.
Inheritance thread_starting(ThreadState &t);
// On the new thread t, before it allocates or frees anything.
void thread_started(ThreadState &t, const Inheritance &from);
// At thread exit (the exit handler): a thread taking part records its bytes and lets go.
void thread_exit(ThreadState &t);

}  // namespace check
}  // namespace allocscope
