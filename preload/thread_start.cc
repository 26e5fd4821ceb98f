// thread_start.cc: the preload's pthread_create, so that every thread is known to the
// budget before it runs any code of its own.
//
// The budget (policy/budget.h) charges each thread's live bytes from jemalloc's
// per-thread counters, so it must know a thread before that thread frees anything: one
// that only frees what others allocated would otherwise leave those bytes charged for
// good. And allocations below kLimitDirectMax go straight to jemalloc, checked only by the
// activity callback that joining installs. So a new thread joins first, then runs its
// start routine; and the thread that creates it joins too, which covers the main thread.
// Threads glibc starts itself (SIGEV_THREAD timers, POSIX AIO) do not come through here;
// budget.h says what that costs. A thread started inside a failure check with
// ALLOCSCOPE_CHECK_ALL_THREADS takes part in it (policy/check.h) before its first free.
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "budget.h"
#include "check.h"
#include "fault_events.h"
#include "compiler.h"
#include "thread_state.h"

namespace {

using pthread_create_fn = int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *),
                                  void *) noexcept;

pthread_create_fn real_pthread_create() {
  static const pthread_create_fn real =
      reinterpret_cast<pthread_create_fn>(dlsym(RTLD_NEXT, "pthread_create"));
  return real;
}

struct ThreadStart {
  void *(*routine)(void *);
  void *arg;
  allocscope::check::Inheritance check;
};

// Not noexcept: cancellation unwinds through it.
void *start_thread(void *p) {
  allocscope::budget::know(allocscope::t_state);  // first: the free below counts
  allocscope::budget::thread_arrived();
  const ThreadStart start = *static_cast<ThreadStart *>(p);
  allocscope::check::thread_started(allocscope::t_state, start.check);  // before the free
  allocscope::fault_events::thread_started();  // a sweep run's alternate signal stack
  free(p);
  return start.routine(start.arg);
}

}  // namespace

AS_EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                             void *(*routine)(void *), void *arg) noexcept {
  const pthread_create_fn real = real_pthread_create();
  if (AS_UNLIKELY(real == nullptr)) return EAGAIN;
  // The creator too: the first thread a process starts is started by the main thread,
  // which is then known from before it has company (budget.h).
  allocscope::budget::know(allocscope::t_state);
  // Allocated under the caller's policy, like glibc's own allocations for the thread.
  auto *start = static_cast<ThreadStart *>(malloc(sizeof(ThreadStart)));
  if (start == nullptr) return EAGAIN;  // what glibc returns when it lacks memory
  *start = ThreadStart{routine, arg, allocscope::check::thread_starting(allocscope::t_state)};
  allocscope::budget::thread_expected();  // it may free memory before it has joined
  const int rc = real(thread, attr, start_thread, start);
  if (rc != 0) {
    allocscope::budget::thread_arrived();
    free(start);
  }
  return rc;
}
