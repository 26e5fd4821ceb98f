// check.cc: see check.h.
#include "check.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>

#include "backend.h"
#include "backtrace.h"
#include "callsite.h"

namespace allocscope {
namespace check {
namespace {

constexpr unsigned kKnownFlags =
    ALLOCSCOPE_CHECK_PERSISTENT | ALLOCSCOPE_CHECK_FORK | ALLOCSCOPE_CHECK_ALL_THREADS;
constexpr int kMaxRuns = 16;
// Threads followed per run: slot 0 is the calling thread, the rest are threads fn started
// (ALL_THREADS). A fixed table: slots are written inside malloc, from any of fn's threads.
constexpr int kMaxThreads = 64;

struct Run;

// One thread taking part in a run of fn.
struct Slot : fault::CheckedThread {
  Run *run;
  int index;         // in run->slots
  int identity;      // its slot in the counted run (check.h), -1 if it had none there
  unsigned started;  // threads it has started in this run (written by itself only)
  const uint64_t *allocated;  // its jemalloc counters
  const uint64_t *deallocated;
  int64_t net_at_attach;
  int64_t net_at_exit;
  std::atomic<bool> exited;  // net_at_exit is written; released after it
};

// A thread of the counted run: who started it (identity, -1 for the calling thread), as
// which of its starts, and how many eligible allocations it made. The points of later runs
// find their threads by (parent, ordinal), which does not depend on scheduling.
struct Identity {
  int parent;
  unsigned ordinal;
  uint64_t eligible;
};

// A point's first failure, recorded inside malloc by on_first_failure.
struct Injection {
  uint64_t size;
  char function[32];
  int frames;
  void *stack[kMaxFrames];
};

// How one run of fn ended.
struct Outcome {
  int outcome;       // ALLOCSCOPE_CHECK_RETURNED, _SIGNALED, _EXITED
  int value;
  int64_t residue;   // bytes left live by fn's threads taking part, regions included
  uint32_t failed;   // allocations failed
  uint32_t running;  // threads fn started and left running
};

// What a FORK child writes to its pipe: the injection at once, the outcome at the end.
// Each message is one write() of less than PIPE_BUF, so it arrives whole.
struct Message {
  enum Kind : uint32_t { kInjection = 1, kOutcome = 2 } kind;
  union {
    Injection injection;
    Outcome outcome;
  };
};
static_assert(sizeof(Message) < 4096, "a message must be one atomic pipe write");

struct Run {
  std::atomic<bool> in_use;
  bool persistent;
  bool all_threads;
  bool counting;  // the counted run: threads get new identities
  int target_identity;
  uint64_t target_nth;
  std::atomic<int> slot_count;
  Slot slots[kMaxThreads];
  Identity identities[kMaxThreads];
  int identity_count;
  bool injected;
  Injection injection;
  int report_fd;  // in a FORK child: its pipe; else -1
};

Run g_runs[kMaxRuns];
// The run the calling thread's check uses (nesting is -EBUSY).
__thread Run *t_running __attribute__((tls_model("initial-exec")));

Run *claim_run() {
  for (Run &r : g_runs) {
    bool free = false;
    if (r.in_use.compare_exchange_strong(free, true)) return &r;
  }
  return nullptr;
}

int64_t net(const Slot &s) {
  return static_cast<int64_t>(__atomic_load_n(s.allocated, __ATOMIC_RELAXED)) -
         static_cast<int64_t>(__atomic_load_n(s.deallocated, __ATOMIC_RELAXED));
}

// The calling thread's jemalloc counters (mallctl may set up the thread's jemalloc state
// the first time: call it before anything is counted).
void find_counters(Slot &s) {
  size_t len = sizeof(s.allocated);
  je_mallctl("thread.allocatedp", &s.allocated, &len, nullptr, 0);
  len = sizeof(s.deallocated);
  je_mallctl("thread.deallocatedp", &s.deallocated, &len, nullptr, 0);
}

// Inside malloc, on the thread whose allocation is failed first in this run: no allocation,
// no lock. Only one thread fails anything in a run (the target's), so no race either.
void on_first_failure(fault::CheckedThread &c, size_t size, const char *function) {
  Run &run = *static_cast<Slot &>(c).run;
  Injection &in = run.injection;
  in.size = size;
  strncpy(in.function, function != nullptr ? function : "?", sizeof(in.function) - 1);
  in.function[sizeof(in.function) - 1] = '\0';
  in.frames = capture_backtrace(in.stack, kMaxFrames);
  run.injected = true;
  if (run.report_fd >= 0) {
    Message m;
    memset(&m, 0, sizeof(m));  // every byte written is defined
    m.kind = Message::kInjection;
    m.injection = in;
    while (write(run.report_fd, &m, sizeof(m)) < 0 && errno == EINTR) {
    }
  }
}

// Fills a slot for a thread joining the current run of fn.
void prepare(Run &run, Slot &s, int index, int identity) {
  s.run = &run;
  s.index = index;
  s.identity = identity;
  s.started = 0;
  s.eligible = 0;
  s.failed = 0;
  s.region_bytes = 0;
  s.persistent = run.persistent;
  s.fail_at = identity >= 0 && identity == run.target_identity ? run.target_nth : 0;
  s.on_first_failure = on_first_failure;
}

// The counted run's thread started by `parent` as its ordinal-th start, or -1.
int identity_of(const Run &run, int parent, unsigned ordinal) {
  for (int i = 1; i < run.identity_count; ++i)
    if (run.identities[i].parent == parent && run.identities[i].ordinal == ordinal) return i;
  return -1;
}

// One run of fn on the calling thread (t), failing the target's nth eligible allocation
// (none while counting). Allocates nothing between the two readings of the counters.
Outcome run_here(Run &run, ThreadState &t, int (*fn)(void *), void *arg) {
  Slot &me = run.slots[0];
  run.slot_count.store(1);
  run.injected = false;
  prepare(run, me, 0, 0);
  fault::attach_check(t, &me);
  const int64_t before = net(me);
  const int rc = fn(arg);
  const int64_t after = net(me);
  fault::attach_check(t, nullptr);
  Outcome o{ALLOCSCOPE_CHECK_RETURNED, rc, after - before + me.region_bytes, me.failed, 0};
  const int threads = run.slot_count.load() < kMaxThreads ? run.slot_count.load() : kMaxThreads;
  for (int i = 1; i < threads; ++i) {
    Slot &s = run.slots[i];
    if (s.exited.load(std::memory_order_acquire)) {
      o.residue += s.net_at_exit - s.net_at_attach + s.region_bytes;
      o.failed += s.failed;
    } else {
      ++o.running;
    }
  }
  if (run.counting) {
    run.identity_count = threads;
    run.identities[0] = {-1, 0, me.eligible};
    for (int i = 1; i < threads; ++i) run.identities[i].eligible = run.slots[i].eligible;
  }
  // The run is over: a thread still attached to it lets go at its next allocation.
  for (int i = 0; i < threads; ++i) {
    run.slots[i].generation.fetch_add(1, std::memory_order_release);
    run.slots[i].exited.store(false, std::memory_order_relaxed);
  }
  return o;
}

// The same in a child process; the child reports through a pipe. *error: the negated
// errno if no child could be run.
Outcome run_forked(Run &run, ThreadState &t, int (*fn)(void *), void *arg, int *error) {
  Outcome o{};
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    *error = -errno;
    return o;
  }
  run.injected = false;
  fflush(nullptr);  // else output buffered before the fork comes out twice if fn calls exit()
  const pid_t child = fork();
  if (child == 0) {
    close(fds[0]);
    run.report_fd = fds[1];
    Message m;
    memset(&m, 0, sizeof(m));
    m.kind = Message::kOutcome;
    m.outcome = run_here(run, t, fn, arg);
    while (write(fds[1], &m, sizeof(m)) < 0 && errno == EINTR) {
    }
    _exit(0);  // no atexit handlers, no stdio flush: the parent's buffers stay its own
  }
  const int fork_errno = errno;
  close(fds[1]);
  if (child < 0) {
    close(fds[0]);
    *error = -fork_errno;
    return o;
  }
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  // The child has ended: everything it wrote is in the pipe (a process forked meanwhile
  // by another thread may hold the write end, so read without waiting for EOF).
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  bool returned = false;
  Message m;
  while (read(fds[0], &m, sizeof(m)) == static_cast<ssize_t>(sizeof(m))) {
    if (m.kind == Message::kInjection) {
      run.injection = m.injection;
      run.injected = true;
    } else if (m.kind == Message::kOutcome) {
      o = m.outcome;
      returned = true;
    }
  }
  close(fds[0]);
  if (!returned) {
    o.failed = run.injected ? 1 : 0;
    if (WIFSIGNALED(status)) {
      o.outcome = ALLOCSCOPE_CHECK_SIGNALED;
      o.value = WTERMSIG(status);
    } else {
      o.outcome = ALLOCSCOPE_CHECK_EXITED;
      o.value = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
  }
  return o;
}

// The object allocscope is linked into, whose frames end a point's call stack: the first
// one above fn's frames is the check calling fn (or the thread start of one of fn's threads).
const void *own_base() {
  Dl_info self;
  return dladdr(reinterpret_cast<void *>(&own_base), &self) != 0 ? self.dli_fbase : nullptr;
}

// Calls each with one point's detail; returns what it returned.
int describe(const Run &run, const Outcome &o, unsigned index, int identity, uint64_t nth,
             int64_t leaked, allocscope_check_each_fn each, void *each_arg) {
  char names[kMaxFrames][256];
  const char *name_of[kMaxFrames];
  const void *own = own_base();
  int frames = 0;
  if (run.injected) {
    for (; frames < run.injection.frames; ++frames) {
      Dl_info info;
      void *frame = run.injection.stack[frames];
      if (dladdr(static_cast<char *>(frame) - 1, &info) != 0 && info.dli_fbase == own) break;
      name_of[frames] = format_call_site(frame, names[frames], sizeof(names[frames]));
    }
  }
  allocscope_check_point p{};
  p.index = index;
  p.thread = static_cast<unsigned>(identity);
  p.nth = static_cast<unsigned>(nth);
  p.failed = o.failed;
  p.outcome = o.outcome;
  p.value = o.value;
  p.leaked_bytes = leaked;
  p.threads_running = o.running;
  p.size = run.injected ? run.injection.size : 0;
  p.function = run.injected ? run.injection.function : "";
  p.frames = frames;
  p.stack = run.injection.stack;
  p.stack_names = name_of;
  return each(&p, each_arg);
}

}  // namespace

int run(int (*fn)(void *), void *arg, unsigned flags, allocscope_check_report *report,
        allocscope_check_each_fn each, void *each_arg) {
  if (fn == nullptr || report == nullptr || (flags & ~kKnownFlags) != 0) return -EINVAL;
  if (t_running != nullptr) return -EBUSY;
  Run *claimed = claim_run();
  if (claimed == nullptr) return -EAGAIN;
  Run &run = *claimed;
  t_running = &run;
  ThreadState &t = t_state;
  *report = allocscope_check_report{};
  run.persistent = flags & ALLOCSCOPE_CHECK_PERSISTENT;
  run.all_threads = flags & ALLOCSCOPE_CHECK_ALL_THREADS;
  run.report_fd = -1;
  run.target_identity = -1;
  run.target_nth = 0;
  find_counters(run.slots[0]);
  fault::set_fail_nth(0);
  fault::count_checks(1);

  // 1. The warm-up: fn's first-use set-up happens here, not at the points.
  fn(arg);
  // 2. The counted run: the points, and the residue R every point is measured against.
  run.counting = true;
  const Outcome counted = run_here(run, t, fn, arg);
  run.counting = false;
  for (int i = 0; i < run.identity_count; ++i)
    report->allocations += static_cast<unsigned>(run.identities[i].eligible);

  // 3. The points: each thread's eligible allocations in turn.
  int status = 0;
  unsigned index = 0;
  bool stop = false;
  for (int identity = 0; identity < run.identity_count && !stop; ++identity) {
    for (uint64_t nth = 1; nth <= run.identities[identity].eligible && !stop; ++nth) {
      run.target_identity = identity;
      run.target_nth = nth;
      const Outcome o = (flags & ALLOCSCOPE_CHECK_FORK) ? run_forked(run, t, fn, arg, &status)
                                                        : run_here(run, t, fn, arg);
      if (status != 0) break;
      ++index;
      ++report->points;
      const int64_t leaked =
          o.outcome == ALLOCSCOPE_CHECK_RETURNED && o.residue > counted.residue
              ? o.residue - counted.residue
              : 0;
      if (o.outcome == ALLOCSCOPE_CHECK_RETURNED) {
        if (o.value != 0) ++report->errors;
        else if (o.failed > 0) ++report->successes;
      }
      if (leaked > 0) {
        ++report->leaks;
        if (report->first_leak == 0) report->first_leak = index;
        report->leaked_bytes += leaked;
      }
      if (each != nullptr) stop = describe(run, o, index, identity, nth, leaked, each, each_arg) != 0;
    }
    if (status != 0) break;
  }

  fault::count_checks(-1);
  t_running = nullptr;
  run.in_use.store(false);
  return status;
}

Inheritance thread_starting(ThreadState &t) {
  fault::CheckedThread *c = fault::attached_check(t);
  if (c == nullptr) return Inheritance{};
  Slot &s = static_cast<Slot &>(*c);
  if (!s.run->all_threads) return Inheritance{};
  return Inheritance{&s, s.generation.load(std::memory_order_relaxed), s.started++};
}

void thread_started(ThreadState &t, const Inheritance &from) {
  if (from.parent == nullptr) return;
  Slot &parent = static_cast<Slot &>(*from.parent);
  if (parent.generation.load(std::memory_order_acquire) != from.generation) return;  // over
  Run &run = *parent.run;
  const int index = run.slot_count.fetch_add(1);
  if (index >= kMaxThreads) return;  // not followed (allocscope_testing.h: at most 63)
  Slot &s = run.slots[index];
  int identity = index;
  if (run.counting) {
    run.identities[index] = Identity{parent.identity, from.ordinal, 0};
  } else {
    identity = parent.identity < 0 ? -1 : identity_of(run, parent.identity, from.ordinal);
  }
  prepare(run, s, index, identity);
  find_counters(s);
  s.net_at_attach = net(s);
  watch_thread_exit(t);  // thread_exit() records its bytes
  fault::attach_check(t, &s);
}

void thread_exit(ThreadState &t) {
  fault::CheckedThread *c = fault::attached_check(t);
  if (c == nullptr) return;
  Slot &s = static_cast<Slot &>(*c);
  fault::attach_check(t, nullptr);
  if (s.index == 0) return;  // the calling thread left fn through pthread_exit
  s.net_at_exit = net(s);
  s.exited.store(true, std::memory_order_release);
}

}  // namespace check
}  // namespace allocscope
