/* allocscope_testing.h: failure-path tests inside a program's own test suite.
 *
 * allocscope_check_failures(fn, arg, flags, &report) fails each allocation fn makes, one
 * at a time, in the calling process, and reports what fn did about it: returned an error,
 * succeeded anyway, or left bytes behind (a leak). It is the loop SQLite's test harness,
 * OpenSSL's mfail tests and wasmtime's OomTest each write by hand, plus the leak check
 * none of them does.
 *
 *   static int make_widget(void *arg) {        // 0: success, non-zero: an error
 *     struct widget *w = widget_new();          // allocates, and must clean up on failure
 *     if (w == NULL) return -1;
 *     widget_free(w);
 *     return 0;
 *   }
 *   ...
 *   allocscope_check_report r;
 *   int rc = allocscope_check_failures(make_widget, NULL, 0, &r);
 *   if (rc == -ENOSYS) skip();                   // not run under liballocscope.so
 *   assert(rc == 0 && r.leaks == 0 && r.errors == r.points);
 *
 * How a check runs (fn must do the same work every time it is called):
 *   1. fn runs once unfailed, as a warm-up: whatever it sets up on first use only (a cache,
 *      a lazily made table, a thread stack glibc keeps for reuse) exists from then on, so
 *      the points below count and fail the same allocations every time.
 *   2. fn runs once more unfailed, counted: `allocations` is the number of *eligible*
 *      allocations it makes on the calling thread (every malloc-family call, operator new,
 *      allocscope_alloc ... that fault injection may fail: not NOFAIL, not inside an
 *      ALLOCSCOPE_NOFAULT scope, within the fault.* filters if any are set). The bytes it
 *      leaves live are its *residue*, R.
 *   3. Point k (k = 1 .. allocations) runs fn with its k-th eligible allocation failed
 *      (NULL with errno ENOMEM; operator new throws std::bad_alloc), on the calling thread
 *      only, like writing k to /proc/self/fail-nth. All other allocations succeed, so the
 *      error path runs with memory available, as OpenSSL's mfail does. With
 *      ALLOCSCOPE_CHECK_PERSISTENT the k-th and every later eligible allocation of the
 *      thread fail (SQLite's persistent mode), which reaches allocations inside error paths.
 * No process is started per point: a point costs one call of fn plus a few microseconds.
 *
 * Leaks. jemalloc counts every byte each thread allocates and frees (usable sizes, that
 * is, rounded up to jemalloc's size classes: 16, 32, 48, 64, 80, 96, 112, 128, 160, ...).
 * A point's residue r is what the calling thread allocated minus what it freed while fn
 * ran, plus the kv region bytes (mmap, outside jemalloc) it mapped minus unmapped. The
 * point leaked r - R bytes when r > R. So a function that keeps a cache or returns
 * nothing it allocated has R = 0 and every byte a failure path strands is a leak, exactly;
 * a function that keeps something on every call (R > 0) leaks at a point only where the
 * failure path strands more than a successful call keeps (a strand smaller than what the
 * failure saved is not seen). Cross-thread frees: a byte is credited to the thread that
 * frees it, as jemalloc counts. So with fn on one thread, memory fn allocates and hands to
 * another thread to free looks leaked, and memory another thread allocated that fn frees
 * lowers the residue; both are the same at every point, so they cancel against R unless
 * the failure changes them. ALLOCSCOPE_CHECK_ALL_THREADS counts fn's own threads too.
 *
 * Benign allocations: an allocation whose failure fn legitimately absorbs (a cache that is
 * only an optimisation, a capability probe) would show as a success at its point. Make it
 * exempt with the NOFAULT scope around it (SQLite's sqlite3BeginBenignMalloc, OpenSSL's
 * NO_CHECK):
 *
 *   allocscope_cookie_t c = allocscope_save(ALLOCSCOPE_NOFAULT);
 *   cache = malloc(n);                      // never failed, never counted as a point
 *   allocscope_restore(c);
 *
 * (C++: allocscope::Scope benign(ALLOCSCOPE_NOFAULT);). Its bytes still count for leaks.
 *
 * Flags:
 *   ALLOCSCOPE_CHECK_PERSISTENT   fail the point's allocation and every later one (above).
 *   ALLOCSCOPE_CHECK_FORK         run each point in a child process forked from the caller
 *       (the warm-up and counted runs stay in the caller): a point that crashes is reported
 *       with its signal (outcome ALLOCSCOPE_CHECK_SIGNALED) and the check goes on; one
 *       that calls exit() is ALLOCSCOPE_CHECK_EXITED. The child reports through a pipe,
 *       the injection's call stack as soon as it is made, so a crash still has it. fn's
 *       side effects at the points stay in the children. A child that never ends blocks
 *       the check (there is no timeout: the test runner's applies). A point costs a fork,
 *       an exit and a wait more (README, "Speed").
 *   ALLOCSCOPE_CHECK_ALL_THREADS  also count and fail the allocations of the threads fn
 *       starts with pthread_create (and the threads they start), and count their bytes for
 *       leaks. A thread is known by its place in the tree of starts: the i-th thread
 *       started by the j-th thread started by fn..., so the points are the same in every
 *       run even when threads start and allocate in another order, provided each thread
 *       does the same work every time. Point numbers run over the calling thread's
 *       allocations first, then each thread's in the counted run's order of starts;
 *       `thread` in allocscope_check_point says whose it is. PERSISTENT is per thread
 *       ("later" on one thread; other threads are not ordered with it). A thread's bytes
 *       count up to its exit (allocscope's exit handler, the first pthread key destructor,
 *       after C++ thread_local destructors): what later key destructors of other libraries
 *       free on it is not seen. fn must join the threads it starts: a thread still running
 *       when fn returns is let go (it counts and fails nothing more, its bytes are not
 *       counted) and reported in `threads_running`. At most 63 started threads per run
 *       are followed; threads glibc starts itself (SIGEV_THREAD timers, POSIX AIO) are not
 *       (they bypass pthread_create). Without this flag, threads fn starts are ordinary
 *       threads: nothing of theirs is counted or failed.
 *
 * Per-point detail: allocscope_check_failures_each() calls each(point, each_arg) after
 * every point, on the calling thread and outside fn (it may allocate; nothing it does is
 * counted): the failed allocation's function, size and call stack, what fn returned, the
 * bytes leaked. A non-zero return from each stops the check after that point (a cap:
 * report->points then counts the points run).
 *
 * Rules for fn: it runs allocations + 2 times (on the calling thread, or at the points in
 * a fork child with ALLOCSCOPE_CHECK_FORK) and must make the same allocations each time
 * but for what the failure changes (a point whose failure fn does not reach this time is
 * reported with failed == 0); with threads, glibc caches thread stacks, and a call that
 * has more threads alive at once than the warm-up had allocates a new one's TLS block on
 * the creating thread; it must not run a check itself (-EBUSY); an
 * exception must not leave it (the C++ forms in allocscope.hpp catch them); it must
 * return 0 for success and non-zero for an error. allocscope_fail_nth() on the calling
 * thread is disarmed by the check.
 *
 * Returns 0, or -ENOSYS without the preload (the client library; *report is zeroed), or
 * -EINVAL for a null fn or report or an unknown flag, -EBUSY if the calling thread is
 * already running a check, -EAGAIN if 16 checks already run in the process, or (FORK) the
 * negated errno of a failed pipe() or fork(), with *report holding the points run so far.
 */
#ifndef ALLOCSCOPE_TESTING_H
#define ALLOCSCOPE_TESTING_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ALLOCSCOPE_CHECK_PERSISTENT 0x1u
#define ALLOCSCOPE_CHECK_FORK 0x2u
#define ALLOCSCOPE_CHECK_ALL_THREADS 0x4u

typedef struct allocscope_check_report {
  unsigned allocations;        /* eligible allocations fn made on this thread, unfailed run */
  unsigned points;             /* failure points run (one per allocation, or fewer if capped) */
  unsigned errors;             /* points where fn returned non-zero */
  unsigned successes;          /* points where fn returned 0 although an allocation failed */
  unsigned leaks;              /* points where bytes fn allocated stayed live after it returned */
  unsigned first_leak;         /* 1-based index of the first leaking point, 0 if none */
  long long leaked_bytes;      /* total over all points */
} allocscope_check_report;
/* (With ALLOCSCOPE_CHECK_ALL_THREADS, allocations counts fn's threads' too. A point that
   crashed or exited (FORK) is in points but not in errors or successes, and neither is
   one whose failure was not reached because fn made fewer allocations that time: the
   per-point detail tells them apart.) */

/* How a point ended. */
#define ALLOCSCOPE_CHECK_RETURNED 0 /* fn returned; value is what it returned */
#define ALLOCSCOPE_CHECK_SIGNALED 1 /* FORK: the child died of signal `value` */
#define ALLOCSCOPE_CHECK_EXITED 2   /* FORK: the child called exit(value) inside fn */

/* One point, as allocscope_check_failures_each reports it. Pointers are valid during the
   call of each only. */
typedef struct allocscope_check_point {
  unsigned index;           /* 1-based point number (first_leak's numbering) */
  unsigned thread;          /* whose allocation: 0 the calling thread; ALL_THREADS: k > 0 is
                               the k-th thread fn's threads started in the counted run */
  unsigned nth;             /* which eligible allocation of that thread was failed, 1-based */
  unsigned failed;          /* allocations failed in this run: 1, more with PERSISTENT, 0 if
                               fn made fewer allocations this time (not reached) */
  int outcome;              /* ALLOCSCOPE_CHECK_RETURNED, _SIGNALED or _EXITED */
  int value;                /* what fn returned, the signal, or the exit status */
  long long leaked_bytes;   /* bytes left live beyond the counted run's residue; 0: none */
  unsigned threads_running; /* ALL_THREADS: threads fn started and had not joined */
  size_t size;              /* the failed allocation's size in bytes */
  const char *function;     /* the entry point failed: "malloc", "operator new", ... */
  int frames;               /* call stack of the failure: frames in stack and stack_names */
  void *const *stack;       /* return addresses, innermost first: the allocator's caller,
                               its caller, ... up to fn (allocscope's own frames are left
                               out). In a FORK child's point, addresses in the caller's
                               layout (the same unless fn loaded libraries in the child). */
  const char *const *stack_names; /* each frame as "module+0xoffset" (addr2line -e MODULE
                                     0xoffset gives its line), as fault.log writes them */
} allocscope_check_point;

typedef int (*allocscope_check_each_fn)(const allocscope_check_point *point, void *each_arg);

/* Runs fn(arg) once to count its allocations, then once per point with the n-th of
   them failed (this thread only, like /proc/self/fail-nth). 0, or -ENOSYS without the
   preload, -EINVAL for a null fn or report. */
int allocscope_check_failures(int (*fn)(void *arg), void *arg, unsigned flags,
                              allocscope_check_report *report);

/* allocscope_check_failures, calling each(point, each_arg) after every point (each may
   be NULL). each returning non-zero stops the check after that point. */
int allocscope_check_failures_each(int (*fn)(void *arg), void *arg, unsigned flags,
                                   allocscope_check_report *report,
                                   allocscope_check_each_fn each, void *each_arg);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCSCOPE_TESTING_H */
