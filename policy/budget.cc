// budget.cc: see budget.h.
#include "budget.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "counters.h"
#include "gate.h"
#include "heap_stats.h"
#include "mutex.h"
#include "cgroup_limit.h"
#include "event_hook.h"
#include "options.h"
#include "region.h"
#include "report.h"
#include "sys.h"
#include "tree_budget.h"

namespace allocscope {
namespace budget {

std::atomic<uint32_t> g_generation{0};

namespace {

std::atomic<int64_t> g_limit{0};  // in a tree: the tree's limit (tree_budget.h)
// This process's limit is its grant from a tree budget (limit_scope:tree).
std::atomic<bool> g_tree{false};
std::atomic<int64_t> g_arena_limit{0};
std::atomic<int64_t> g_emergency{0};
std::atomic<int> g_waiters{0};

// Guards the registry and the totals below, and serialises refills and limit changes.
// Taken through Locked, which marks the thread as holding it: jemalloc may call the
// activity callback from an allocation made meanwhile, and that must not take it again.
Mutex g_mutex{LockRank::kBudget};
__thread bool t_holds_mutex __attribute__((tls_model("initial-exec")));

class ABSL_SCOPED_LOCKABLE Locked {
 public:
  Locked() ABSL_EXCLUSIVE_LOCK_FUNCTION(g_mutex) {
    g_mutex.lock();
    t_holds_mutex = true;
  }
  ~Locked() ABSL_UNLOCK_FUNCTION() {
    t_holds_mutex = false;
    g_mutex.unlock();
  }
  Locked(const Locked &) = delete;
  Locked &operator=(const Locked &) = delete;
};

// Live bytes that no joined thread accounts for: the baseline when the limit was set,
// the net bytes of threads that have exited (or, in a fork child, vanished), and the
// bytes charged outside jemalloc (g_outside_jemalloc: regions).
int64_t g_outside ABSL_GUARDED_BY(g_mutex) = 0;
int64_t g_outside_jemalloc ABSL_GUARDED_BY(g_mutex) = 0;
// Every thread that has joined, until it exits (intrusive list), and how many.
ThreadState *g_threads ABSL_GUARDED_BY(g_mutex) = nullptr;
int64_t g_thread_count ABSL_GUARDED_BY(g_mutex) = 0;
// Where jemalloc keeps a thread's allocated/deallocated counters, relative to the thread's
// ThreadState: both live in this object's static TLS block (initial-exec), so the distance
// is the same for every thread. Learnt from the first thread that asks mallctl; it lets a
// thread be registered without asking mallctl itself, which would initialise jemalloc's
// whole per-thread state and thread cache (~22,000 instructions a thread, start and exit
// together, where a thread that never needs them pays nothing under bare jemalloc).
ptrdiff_t g_allocated_offset ABSL_GUARDED_BY(g_mutex) = 0;  // 0: not learnt yet
ptrdiff_t g_deallocated_offset ABSL_GUARDED_BY(g_mutex) = 0;
// Registered threads whose activity callback is not installed (they were registered while
// no limit was set): while there are any, the limit counts as near, so that each one's
// first allocation is checked, which installs it (budget.h).
int64_t g_without_callback ABSL_GUARDED_BY(g_mutex) = 0;

// jemalloc took our activity callback (it does unless built without stats): without it
// nothing checks the unchecked allocations, so the limit is always near.
bool g_activity_checks ABSL_GUARDED_BY(g_mutex) = true;

// ---- The peak (budget.h: peak()) ----
// The charge is known exactly only at an exact sum (sum_charged). Between two, each
// activity callback moves an estimate by what its thread grew or shrank since its previous
// callback: so the estimate, and the peak taken from it, lag the truth by at most what
// every thread may allocate between two callbacks (kUncheckedPerThread each), at no cost
// to any allocation that does not already reach a callback or a sum.
std::atomic<int64_t> g_live_estimate{0};
std::atomic<int64_t> g_peak{0};
std::atomic<uint64_t> g_peak_at_ns{0};
// Threads join in full (activity callback) even with no limit: the peak, the live page
// and the timeline need their callbacks (watch_threads).
std::atomic<bool> g_watching{false};

void raise_peak(int64_t live) {
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (live > peak)
    if (g_peak.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
      g_peak_at_ns.store(sys::now_ns(), std::memory_order_relaxed);
      return;
    }
}
void note_live(int64_t live) {
  g_live_estimate.store(live, std::memory_order_relaxed);
  raise_peak(live);
}

Mutex g_wait_mutex{LockRank::kBudgetWait};
pthread_cond_t g_freed = PTHREAD_COND_INITIALIZER;

// Another thread's counters and allowance are read while it runs: each is an aligned
// 8-byte word its owner writes, so a read sees a whole (possibly stale) value.
int64_t load(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
int64_t load(const uint64_t *p) { return static_cast<int64_t>(__atomic_load_n(p, __ATOMIC_RELAXED)); }

int64_t net_since_join(const ThreadState &t) {
  return load(t.budget.allocated) - load(t.budget.deallocated) - t.budget.net_at_join;
}

bool joined_now(const ThreadState &t) { return t.budget.generation == g_generation.load(); }

bool registered(const ThreadState &t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) { return t.budget.prev != nullptr || g_threads == &t; }

void unlink(ThreadState &t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  if (!registered(t)) return;
  if (t.budget.prev != nullptr) t.budget.prev->budget.next = t.budget.next;
  else g_threads = t.budget.next;
  if (t.budget.next != nullptr) t.budget.next->budget.prev = t.budget.prev;
  t.budget.next = t.budget.prev = nullptr;
  --g_thread_count;
  AS_DEBUG_ASSERT(g_thread_count >= 0 && g_without_callback >= 0);
}

// A thread that leaves (exits, or does not exist in a fork child): its live bytes stay
// charged outside any thread; its allowance goes back. Under g_mutex.
void leave(ThreadState &t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  if (joined_now(t) && t.budget.allocated != nullptr) g_outside += net_since_join(t);
  if (t.budget.uncounted) {
    t.budget.uncounted = false;
    --g_without_callback;
  }
  t.budget.left = 0;
  t.reserve.left = 0;
  t.budget.generation = 0;
  unlink(t);
}


// What the limit caps: every joined thread's live bytes, unused reserve and unused
// allowance, plus the bytes outside them. Under g_mutex.
int64_t sum_charged(bool with_allowances) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  int64_t total = g_outside, allowances = 0;
  for (ThreadState *t = g_threads; t != nullptr; t = t->budget.next)
    if (joined_now(*t) && t->budget.allocated != nullptr) {
      total += net_since_join(*t) + load(&t->reserve.left);
      allowances += load(&t->budget.left);
    }
  // Every exact sum is a point of the peak, and the base the activity callbacks' estimate
  // moves from (note_live).
  if (g_limit.load(std::memory_order_relaxed) != 0 ||
      g_arena_limit.load(std::memory_order_relaxed) != 0)
    note_live(total);
  return with_allowances ? total + allowances : total;
}

// The cap on all charged bytes: the limit (and the emergency allowance for MEMALLOC), or
// none when only the arena is limited.
int64_t cap_for(bool memalloc) {
  int64_t cap = g_limit.load(std::memory_order_relaxed);
  if (cap == 0) return INT64_MAX;
  if (g_tree.load(std::memory_order_relaxed)) cap = tree::grant();  // this process's share
  return memalloc ? cap + g_emergency.load(std::memory_order_relaxed) : cap;
}

// ---- limit:cgroup (cgroup_limit.h): the limit follows the cgroup's ----

// The headroom under the cgroup's limit (UINT64_MAX: 5 %), the directory read (set once
// limit:cgroup is applied; "" = the process's own cgroup), and when it was last read.
std::atomic<bool> g_cgroup{false};
std::atomic<uint64_t> g_cgroup_headroom{0};
char g_cgroup_dir[PATH_MAX] ABSL_GUARDED_BY(g_mutex);
std::atomic<uint64_t> g_cgroup_read_ns{0};

// What limit:cgroup makes of a cgroup limit: less the headroom, 0 (none) for none.
int64_t limit_under(uint64_t cgroup_bytes) {
  if (cgroup_bytes == 0) return 0;
  const uint64_t headroom_setting = g_cgroup_headroom.load();
  const uint64_t headroom =
      headroom_setting == UINT64_MAX ? cgroup_bytes / 20 : headroom_setting;
  const uint64_t limit = cgroup_bytes > headroom ? cgroup_bytes - headroom : 1;
  return static_cast<int64_t>(limit > INT64_MAX ? INT64_MAX : limit);
}

void apply_limit_locked(int64_t limit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex);

// Reads the cgroup's limit again, at most every 100 ms, whenever the budget is asked for
// more (a refill, a region, a reserve: never on the fast path), so that a resized
// container is followed. Under g_mutex.
void follow_cgroup() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  if (!g_cgroup.load(std::memory_order_relaxed)) return;
  const uint64_t now = sys::now_ns();
  if (now - g_cgroup_read_ns.load() < 100 * sys::kNsPerMs) return;
  g_cgroup_read_ns.store(now);
  CgroupLimit cgroup;
  if (!read_cgroup_limit(g_cgroup_dir, &cgroup)) return;
  const int64_t limit = limit_under(cgroup.bytes);
  if (limit != g_limit.load()) apply_limit_locked(limit);
}

// ---- A tree budget (tree_budget.h): this process's grant is its limit ----

// The room a member keeps under its grant: what its threads may allocate unchecked, and a
// batch, so that it asks the tree about once a MiB. Under g_mutex.
constexpr int64_t kTreeBatch = 1 << 20;
int64_t tree_target() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  return g_thread_count * kUncheckedPerThread + kTreeBatch;
}
std::atomic<int64_t> g_tree_target{kTreeBatch};

// Grows the grant so that `total` charged bytes fit, with the target room above them if the
// tree allows; nothing when they fit already, or no limit is set. Under g_mutex.
void cover(int64_t total) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  follow_cgroup();
  if (!g_tree.load(std::memory_order_relaxed) || g_limit.load() == 0) return;
  const int64_t short_by = total - tree::grant();
  if (short_by > 0) tree::take(short_by + tree_target(), short_by);
}

// Keeps the grant between the target room and twice it above `total`: grows it (as far as
// the tree allows) or gives the surplus back, which wakes NOFAIL waiters anywhere in the
// tree. Under g_mutex.
void balance_grant(int64_t total) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  if (!g_tree.load(std::memory_order_relaxed) || g_limit.load() == 0) return;
  const int64_t target = tree_target();
  g_tree_target.store(target, std::memory_order_relaxed);
  const int64_t room = tree::grant() - total;
  if (room < target) tree::take(target - room, 0);
  else if (room > 2 * target) tree::give_back(room - target);
}

// How much more jemalloc memory fits on top of `total` (sum_charged(true)): what is left
// under the limit, and under arena_limit for the arena's share (everything but regions).
// arena_limit caps every arena allocation, not only kv's, as the kernel's contiguous
// allocator fails for every caller, not only kvmalloc's.
int64_t arena_headroom(int64_t total, bool memalloc) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  int64_t room = cap_for(memalloc) - total;
  const int64_t arena_cap = g_arena_limit.load(std::memory_order_relaxed);
  if (arena_cap != 0 && arena_cap - (total - g_outside_jemalloc) < room)
    room = arena_cap - (total - g_outside_jemalloc);
  return room;
}

// How much all threads together may still add to their live bytes, beyond what each may
// allocate unchecked, before the limit is near: set by every exact sum, and lowered by
// each callback by what its thread grew since its previous one. So a callback needs the
// lock and an exact sum only once the room is used up. A callback that lowers the room
// just after an exact sum that already counted its growth counts that growth twice: the
// room only ever errs low. (Frees are not added back: the next exact sum sees them.)
std::atomic<int64_t> g_room{0};

// A NOFAIL allocation overdrew the limit: later ones may too, until the charge is back
// under the limit (judge_nearness clears it).
std::atomic<bool> g_overdrawing{false};

// Sets gate::kLimitNear when less than kUncheckedPerThread per known thread is left
// under the limit (`total` is sum_charged(true)), clears it otherwise. Under g_mutex.
void judge_nearness(int64_t total) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  balance_grant(total);
  const int64_t limit = g_limit.load(std::memory_order_relaxed);
  const bool limited = limit != 0 || g_arena_limit.load(std::memory_order_relaxed) != 0;
  const int64_t headroom = arena_headroom(total, false);
  const int64_t room = !limited           ? INT64_MAX / 2
                       : g_activity_checks ? headroom - g_thread_count * kUncheckedPerThread
                                           : -1;
  g_room.store(room, std::memory_order_relaxed);
  if (limit != 0 && total <= limit && g_overdrawing.load(std::memory_order_relaxed))
    g_overdrawing.store(false, std::memory_order_relaxed);
  const bool near = room < 0 || (limited && g_without_callback != 0);
  if (near != static_cast<bool>(gate::bits() & gate::kLimitNear)) {
    if (near) {
      stats::bump(stats::g_counters.limit_near);
      gate::change(gate::kLimitNear, 0);
    } else {
      gate::change(0, gate::kLimitNear);
    }
  }
}

// Called by jemalloc on the thread after every kCheckInterval bytes it allocates or frees:
// takes its growth from the room, and sums exactly when the room is used up, or while the
// limit is near (to see when it is no longer).
void check_room(int64_t grown, uint32_t bits);

void on_activity(void *, uint64_t, uint64_t) {
  ThreadState &t = t_state;
  const uint32_t bits = gate::bits();
  if (t_holds_mutex || t.budget.exited || t.budget.exiting) return;
  const int64_t net = load(t.budget.allocated) - load(t.budget.deallocated);
  // Relaxed atomics: reconfigure() re-baselines it from another thread.
  const int64_t grown = net - __atomic_load_n(&t.budget.net_at_check, __ATOMIC_RELAXED);
  __atomic_store_n(&t.budget.net_at_check, net, __ATOMIC_RELAXED);
  if (grown != 0) {
    const int64_t live = g_live_estimate.fetch_add(grown, std::memory_order_relaxed) + grown;
    if (grown > 0) raise_peak(live);
  }
  if (bits & gate::kLimit) check_room(grown, bits);
  // The live page's request slot and the timeline's samples (event_hook.h): here, where
  // jemalloc already calls us every 64 KiB a thread allocates or frees.
  event_hook::fire();
}

// The limit's part of the callback: takes the growth from the room, and sums exactly when
// the room is used up, or while the limit is near.
void check_room(int64_t grown, uint32_t bits) {
  if (!(bits & gate::kLimitNear)) {
    if (grown <= 0) {
      // In a tree, frees may leave this process with more grant than it needs, which
      // another member may be waiting for: give it back once the room is twice the target.
      if (grown == 0 || !g_tree.load(std::memory_order_relaxed) ||
          g_room.fetch_sub(grown, std::memory_order_relaxed) - grown <=
              2 * g_tree_target.load(std::memory_order_relaxed))
        return;
    } else if (g_room.fetch_sub(grown, std::memory_order_relaxed) - grown >= 0) {
      return;
    }
  }
  Locked lock;
  judge_nearness(sum_charged(true));
}

// jemalloc's activity_callback_thunk_t.
struct ActivityThunk {
  void (*callback)(void *uctx, uint64_t allocated, uint64_t deallocated);
  void *uctx;
};

// The counters of a thread registered without mallctl. Under g_mutex.
void point_at_counters(ThreadState &t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  if (t.budget.allocated != nullptr || g_allocated_offset == 0) return;
  char *const base = reinterpret_cast<char *>(&t);
  t.budget.allocated = reinterpret_cast<const uint64_t *>(base + g_allocated_offset);
  t.budget.deallocated = reinterpret_cast<const uint64_t *>(base + g_deallocated_offset);
}

void link(ThreadState &t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  if (registered(t)) return;
  watch_thread_exit(t);
  t.budget.next = g_threads;
  if (g_threads != nullptr) g_threads->budget.prev = &t;
  g_threads = &t;
  ++g_thread_count;
}

// The calling thread (t) joins the limit in full: its counters from mallctl, its activity
// callback, its baseline. Under g_mutex.
// jemalloc's counters of the calling thread, through mallctl.
void counters_from_mallctl(const uint64_t **allocated, const uint64_t **deallocated) {
  size_t len = sizeof(*allocated);
  je_mallctl("thread.allocatedp", allocated, &len, nullptr, 0);
  len = sizeof(*deallocated);
  je_mallctl("thread.deallocatedp", deallocated, &len, nullptr, 0);
}

// Whether `t` points at the calling thread's own counters (a debug check: the TLS block is
// one, static, so the layout learnt once holds in every thread).
[[maybe_unused]] bool counters_match_mallctl(const ThreadState &t) {
  const uint64_t *allocated = nullptr, *deallocated = nullptr;
  counters_from_mallctl(&allocated, &deallocated);
  return t.budget.allocated == allocated && t.budget.deallocated == deallocated;
}

// experimental.thread.activity_callback's MIB, looked up once: by name, each thread's
// mallctl would parse the name again, which cost more than the rest of a join.
size_t g_activity_mib[4] ABSL_GUARDED_BY(g_mutex);
size_t g_activity_miblen ABSL_GUARDED_BY(g_mutex) = 0;  // 0: not looked up yet

void join_locked(ThreadState &t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  if (!t.budget.callback) {
    if (t.budget.allocated == nullptr) {
      // The first thread to join learns the layout; a thread registered after that
      // already points at its counters (point_at_counters).
      const uint64_t *allocated = nullptr, *deallocated = nullptr;
      counters_from_mallctl(&allocated, &deallocated);
      char *const base = reinterpret_cast<char *>(&t);
      if (g_allocated_offset == 0) {
        g_allocated_offset = reinterpret_cast<const char *>(allocated) - base;
        g_deallocated_offset = reinterpret_cast<const char *>(deallocated) - base;
        // Once: the threads registered before the layout was known.
        for (ThreadState *other = g_threads; other != nullptr; other = other->budget.next)
          point_at_counters(*other);
      }
      t.budget.allocated = allocated;
      t.budget.deallocated = deallocated;
    }
    AS_DEBUG_ASSERT(counters_match_mallctl(t));
    if (g_activity_miblen == 0) {
      size_t len = sizeof(g_activity_mib) / sizeof(g_activity_mib[0]);
      if (je_mallctlnametomib("experimental.thread.activity_callback", g_activity_mib, &len) == 0)
        g_activity_miblen = len;
    }
    ActivityThunk thunk{on_activity, nullptr};
    if (g_activity_miblen == 0 || je_mallctlbymib(g_activity_mib, g_activity_miblen, nullptr,
                                                  nullptr, &thunk, sizeof(thunk)) != 0)
      g_activity_checks = false;
    t.budget.callback = true;
    if (t.budget.uncounted) {
      t.budget.uncounted = false;
      --g_without_callback;
    }
  }
  link(t);
  t.budget.net_at_join = load(t.budget.allocated) - load(t.budget.deallocated);
  t.budget.net_at_check = t.budget.net_at_join;
  t.budget.left = 0;
  t.budget.generation = g_generation.load();
  // One more thread may allocate kUncheckedPerThread unchecked: take it from the room
  // rather than sum every thread (a join must not cost O(threads)). The room only errs
  // low; when it runs out, one exact sum.
  if (g_limit.load(std::memory_order_relaxed) != 0 &&
      g_room.fetch_sub(kUncheckedPerThread, std::memory_order_relaxed) < kUncheckedPerThread)
    judge_nearness(sum_charged(true));
}

// ---- Threads that have exited ----
//
// The exit handler (lifecycle.cc) runs in the first pthread key destructor, before the
// program's and libraries' own destructors and glibc's __libc_thread_freeres, which still
// allocate and free on the thread. So an exiting thread leaves the registry (its live
// bytes go to g_outside) but is not done: it is "exiting", and gate::kExiting sends every
// allocation and free through the engine, which adds what the thread's own jemalloc
// counters moved to g_outside after each one (exiting_sync). When the kernel says the
// thread is gone (tgkill: ESRCH) it leaves the exiting table, and the last one to go
// takes the bit off: nothing it did is lost, and no dead thread's counters are ever read
// (its TLS may already serve another thread).
constexpr int kMaxExiting = 256;
std::atomic<pid_t> g_exiting[kMaxExiting];
std::atomic<int> g_exiting_count{0};
std::atomic<uint64_t> g_last_reap_ns{0};

bool enter_exiting(ThreadState &t) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  const pid_t tid = static_cast<pid_t>(gettid());
  for (std::atomic<pid_t> &slot : g_exiting) {
    pid_t empty = 0;
    if (!slot.compare_exchange_strong(empty, tid)) continue;
    if (g_exiting_count.fetch_add(1) == 0) gate::change(gate::kExiting, 0);
    t.budget.exiting = true;
    t.budget.net_at_check = load(t.budget.allocated) - load(t.budget.deallocated);
    return true;
  }
  return false;  // table full: this thread's later frees are not counted (budget.h)
}

}  // namespace

void thread_exit(ThreadState &t) {
  Locked lock;
  // One thread fewer may allocate unchecked, and its allowance comes back: the room
  // grows by both (it only errs low, so no exact sum is needed to say the limit is far).
  if (joined_now(t) && g_limit.load(std::memory_order_relaxed) != 0) {
    const int64_t room = g_room.fetch_add(kUncheckedPerThread + t.budget.left) +
                         kUncheckedPerThread + t.budget.left;
    if (room >= 0 && (gate::bits() & gate::kLimitNear)) gate::change(0, gate::kLimitNear);
  }
  leave(t);
  // With no limit nothing is charged: nothing to follow.
  if (!(gate::bits() & gate::kLimit) || !enter_exiting(t)) t.budget.exited = true;
}

void exiting_sync(ThreadState &t) {
  const int64_t net = load(t.budget.allocated) - load(t.budget.deallocated);
  const int64_t moved = net - t.budget.net_at_check;
  if (moved == 0) return;
  t.budget.net_at_check = net;
  {
    Locked lock;
    g_outside += moved;
  }
  if (moved < 0) wake_waiters();
}

void reap_exited() {
  if (g_exiting_count.load(std::memory_order_relaxed) == 0) return;
  // At most every millisecond: every free comes here while a thread is exiting.
  const uint64_t now = sys::now_ns();
  uint64_t last = g_last_reap_ns.load(std::memory_order_relaxed);
  if (now - last < sys::kNsPerMs || !g_last_reap_ns.compare_exchange_strong(last, now)) return;
  const pid_t pid = getpid();
  for (std::atomic<pid_t> &slot : g_exiting) {
    const pid_t tid = slot.load(std::memory_order_relaxed);
    if (tid == 0 || !sys::thread_is_gone(pid, tid)) continue;
    pid_t expected = tid;
    if (slot.compare_exchange_strong(expected, 0) && g_exiting_count.fetch_sub(1) == 1)
      gate::change(0, gate::kExiting);
  }
}

void join(ThreadState &t) {
  if (t.budget.exited || t.budget.exiting) return;
  Locked lock;
  if (!registered(t) || !joined_now(t) || !t.budget.callback) join_locked(t);
}

void know(ThreadState &t) {
  if (t.budget.exited || t.budget.exiting) return;
  Locked lock;
  if (g_limit.load() != 0 || g_arena_limit.load() != 0 || g_watching.load()) {
    if (!registered(t) || !joined_now(t) || !t.budget.callback) join_locked(t);
    return;
  }
  link(t);
  point_at_counters(t);
}

namespace {

int64_t clamp(size_t bytes) { return static_cast<int64_t>(bytes > INT64_MAX ? INT64_MAX : bytes); }

// Engages the accounting when a limit or an arena limit is first set (starting from what
// is live now), disengages it when neither is. Under g_mutex.
void reconfigure(int64_t limit, int64_t arena_limit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  const bool was_engaged = g_limit.load() != 0 || g_arena_limit.load() != 0;
  const bool engaged = limit != 0 || arena_limit != 0;
  if (engaged && !was_engaged) {
    HeapTotals heap;
    read_heap_totals(&heap);
    const region::Stats regions = region::stats();
    g_outside_jemalloc = static_cast<int64_t>(regions.bytes);
    g_outside = static_cast<int64_t>(heap.allocated) + g_outside_jemalloc;
    // Every thread starts again with no allowance, its live bytes in the baseline. The
    // owner may be taking from its allowance right now; losing that race leaves it at
    // most one allowance (kBatch) it should not have.
    const uint32_t generation = g_generation.fetch_add(1) + 1;
    for (ThreadState *t = g_threads; t != nullptr; t = t->budget.next) {
      point_at_counters(*t);  // the caller joined in full: the layout is known
      if (!t->budget.callback && !t->budget.uncounted) {
        t->budget.uncounted = true;
        ++g_without_callback;
      }
      __atomic_store_n(&t->budget.left, 0, __ATOMIC_RELAXED);
      t->budget.net_at_join = load(t->budget.allocated) - load(t->budget.deallocated);
      // Its next check measures growth from here: what it freed while nothing was
      // engaged must not hide what it allocates now.
      __atomic_store_n(&t->budget.net_at_check, t->budget.net_at_join, __ATOMIC_RELAXED);
      t->budget.generation = generation;
    }
  }
  g_limit.store(limit);
  g_arena_limit.store(arena_limit);
  if (engaged) {
    gate::change(gate::kLimit, 0);
    judge_nearness(sum_charged(true));
  } else {
    gate::change(0, gate::kLimit | gate::kLimitNear);
  }
}

// A new limit: the tree's, in a tree. Under g_mutex.
void apply_limit_locked(int64_t limit) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  if (g_tree.load()) tree::set_limit(limit);
  reconfigure(limit, g_arena_limit.load());
}

}  // namespace

// Setting a limit makes the calling thread known first: in a process that has not started
// a thread yet, that is the main thread (budget.h).
void set_limit(size_t bytes) {
  join(t_state);
  g_cgroup.store(false);
  {
    Locked lock;
    apply_limit_locked(clamp(bytes));
  }
  wake_waiters();  // a higher (or no) limit may satisfy them
}

Refusal set_cgroup_limit(uint64_t headroom, const char *dir) {
  CgroupLimit cgroup;
  if (!read_cgroup_limit(dir, &cgroup))
    return dir[0] != '\0' ? "cgroup_dir names no directory with memory.max, memory.high or "
                            "memory.limit_in_bytes"
                          : "no cgroup memory controller is visible (/proc/self/cgroup, "
                            "/proc/self/mountinfo)";
  join(t_state);
  g_cgroup_headroom.store(headroom);
  const int64_t limit = limit_under(cgroup.bytes);
  if (limit == 0) report("limit:cgroup: the cgroup %s sets no memory limit; no limit", cgroup.dir);
  {
    Locked lock;
    snprintf(g_cgroup_dir, sizeof(g_cgroup_dir), "%s", dir);
    g_cgroup_read_ns.store(sys::now_ns());
    g_cgroup.store(true);
    apply_limit_locked(limit);
  }
  wake_waiters();
  return nullptr;
}

namespace {
// A join was tried and refused (reported): start-up does not try, and report, again.
std::atomic<bool> g_tree_refused{false};
}  // namespace

Refusal set_tree_scope(bool in_tree) {
  if (in_tree == g_tree.load()) return nullptr;
  join(t_state);  // learns the counters' layout before threads are re-baselined
  if (!in_tree) {
    Locked lock;
    g_tree.store(false);
    tree::leave();
    judge_nearness(sum_charged(true));
    return nullptr;
  }
  const bool joined = secure_getenv(tree::kEnv) != nullptr
                          ? tree::join_from_environment()
                          : tree::create(g_limit.load(), g_cgroup.load() ? g_cgroup_dir : "");
  if (!joined) {
    g_tree_refused.store(true);
    return "the tree's shared budget could not be created or joined (reported above)";
  }
  {
    Locked lock;
    g_tree.store(true);
    reconfigure(tree::limit(), g_arena_limit.load());
  }
  wake_waiters();
  return nullptr;
}

Refusal join_tree_from_environment() {
  if (secure_getenv(tree::kEnv) == nullptr || g_tree_refused.load()) return nullptr;
  return set_tree_scope(true);
}

void process_exit() {
  // No lock: it runs in _exit, which a signal handler may call while a thread holds it.
  if (g_tree.load()) tree::leave();
}

void set_arena_limit(size_t bytes) {
  join(t_state);
  Locked lock;
  reconfigure(g_limit.load(), clamp(bytes));
}

size_t arena_limit() { return static_cast<size_t>(g_arena_limit.load()); }

size_t limit() { return static_cast<size_t>(g_limit.load()); }
void set_emergency(size_t bytes) {
  g_emergency.store(static_cast<int64_t>(bytes > INT64_MAX / 2 ? INT64_MAX / 2 : bytes));
}
size_t emergency() { return static_cast<size_t>(g_emergency.load()); }

size_t charged() {
  reap_exited();
  if (!(gate::bits() & gate::kLimit)) {
    HeapTotals heap;
    read_heap_totals(&heap);
    return heap.allocated;
  }
  int64_t total;
  {
    Locked lock;
    total = sum_charged(false);
  }
  return total < 0 ? 0 : static_cast<size_t>(total);
}

bool try_charge(ThreadState &t, size_t size, bool memalloc, bool overdraw) {
  if (t.budget.exited) return true;
  if (AS_UNLIKELY(t.budget.exiting)) {
    // Checked, not taken: exiting_sync() adds what the allocation really moved.
    if (overdraw || size > static_cast<size_t>(INT64_MAX / 2)) return overdraw;
    Locked lock;
    const int64_t total = sum_charged(true);
    cover(total + static_cast<int64_t>(size));
    return static_cast<int64_t>(size) <= arena_headroom(total, memalloc);
  }
  if (take_from_allowance(t, size)) return true;
  if (!(gate::bits() & gate::kLimit)) return true;  // lifted
  if (size > static_cast<size_t>(INT64_MAX / 2)) return false;
  Locked lock;
  if (!joined_now(t) || !t.budget.callback) join_locked(t);
  // This thread's own allowance is part of the sum; it is replaced by the new one.
  int64_t others = sum_charged(true) - t.budget.left;
  const int64_t need = static_cast<int64_t>(size);
  cover(others + need);
  const int64_t room = arena_headroom(others, memalloc);
  bool ok = true;
  if (overdraw || need + kBatch <= room) {
    t.budget.left = need + kBatch;
  } else if (need <= room) {
    t.budget.left = room;  // whatever is left, at least this allocation
  } else {
    t.budget.left = 0;
    ok = false;
  }
  judge_nearness(others + t.budget.left);
  if (ok) t.budget.left -= need;
  return ok;
}

bool charge_outside(size_t bytes, bool memalloc, bool overdraw) {
  if (!(gate::bits() & gate::kLimit)) return true;
  if (bytes > static_cast<size_t>(INT64_MAX / 2)) return false;
  const int64_t need = static_cast<int64_t>(bytes);
  Locked lock;
  const int64_t total = sum_charged(true);
  cover(total + need);
  const bool ok = overdraw || total + need <= cap_for(memalloc);
  if (ok) {
    g_outside += need;
    g_outside_jemalloc += need;
  }
  judge_nearness(ok ? total + need : total);
  return ok;
}

void uncharge_outside(size_t bytes) {
  if (!(gate::bits() & gate::kLimit)) return;
  {
    Locked lock;
    g_outside -= static_cast<int64_t>(bytes);
    g_outside_jemalloc -= static_cast<int64_t>(bytes);
    judge_nearness(sum_charged(true));
  }
  wake_waiters();
}

bool charge_reserve(ThreadState &t, size_t bytes, bool memalloc, bool overdraw) {
  if (t.budget.exited || bytes > static_cast<size_t>(INT64_MAX / 2)) return false;
  Locked lock;
  // Joined, or at least in the registry (with no limit ever set every thread "has joined"
  // generation 0): a limit set later must find the reserve.
  if (!joined_now(t) || !registered(t)) join_locked(t);
  const int64_t total = sum_charged(true);
  cover(total + static_cast<int64_t>(bytes));
  const bool ok = !(gate::bits() & gate::kLimit) || overdraw ||
                  static_cast<int64_t>(bytes) <= arena_headroom(total, memalloc);
  if (ok) __atomic_store_n(&t.reserve.left, t.reserve.left + static_cast<int64_t>(bytes),
                           __ATOMIC_RELAXED);
  judge_nearness(ok ? total + static_cast<int64_t>(bytes) : total);
  return ok;
}

size_t uncharge_reserve(ThreadState &t) {
  int64_t unused;
  {
    Locked lock;
    unused = t.reserve.left;
    __atomic_store_n(&t.reserve.left, 0, __ATOMIC_RELAXED);
    judge_nearness(sum_charged(true));
  }
  wake_waiters();
  return unused > 0 ? static_cast<size_t>(unused) : 0;
}

size_t reserves_total() {
  int64_t total = 0;
  {
    Locked lock;
    for (ThreadState *t = g_threads; t != nullptr; t = t->budget.next)
      total += load(&t->reserve.left);
  }
  return total > 0 ? static_cast<size_t>(total) : 0;
}

size_t arena_share() {
  if (!(gate::bits() & gate::kLimit)) return 0;
  Locked lock;
  const int64_t share = sum_charged(false) - g_outside_jemalloc;
  return share > 0 ? static_cast<size_t>(share) : 0;
}

void start_overdrawing() { g_overdrawing.store(true, std::memory_order_relaxed); }
bool overdrawing() { return g_overdrawing.load(std::memory_order_relaxed); }

// Threads pthread_create has started that have not joined yet: they may free too.
std::atomic<int64_t> g_starting{0};

void thread_expected() { g_starting.fetch_add(1); }
void thread_arrived() { g_starting.fetch_sub(1); }

bool others_can_free() {
  if (g_tree.load() && tree::members() > 1) return true;  // another process may free
  Locked lock;
  return g_thread_count + g_starting.load() > g_waiters.load() + 1;
}

void wait_for_free(uint64_t timeout_ns) {
  const sys::CancelDeferral no_cancel;  // pthread_cond_clockwait is a cancellation point
  if (g_waiters.fetch_add(1) == 0) gate::change(gate::kWaiters, 0);
  timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += static_cast<time_t>(timeout_ns / 1000000000u);
  deadline.tv_nsec += static_cast<long>(timeout_ns % 1000000000u);
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1000000000L;
  }
  if (g_tree.load()) {
    tree::wait(timeout_ns);  // frees in any process of the tree wake it
  } else {
    MutexLock lock(g_wait_mutex);
    pthread_cond_clockwait(&g_freed, g_wait_mutex.native(), CLOCK_MONOTONIC, &deadline);
  }
  if (g_waiters.fetch_sub(1) == 1) gate::change(0, gate::kWaiters);
}

void wake_waiters() {
  if (g_waiters.load(std::memory_order_relaxed) == 0) return;
  if (g_tree.load()) tree::wake();
  MutexLock lock(g_wait_mutex);
  pthread_cond_broadcast(&g_freed);
}

// Held across fork like any Locked: an atfork handler that allocates meanwhile must not
// reach the activity callback's lock.
void prefork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  g_mutex.lock();
  t_holds_mutex = true;
  g_wait_mutex.lock();
}

void postfork_parent() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  g_wait_mutex.unlock();
  t_holds_mutex = false;
  g_mutex.unlock();
}

void postfork_child() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  ThreadState &self = t_state;
  for (ThreadState *t = g_threads, *next; t != nullptr; t = next) {
    next = t->budget.next;
    if (t != &self) leave(*t);
  }
  if (g_tree.load()) {
    // A slot of its own; what it inherited is the parent's memory, charged to the parent:
    // the child is charged from here on.
    tree::postfork_child();
    if (!tree::active()) g_tree.store(false);
    else g_outside -= sum_charged(false);
  }
  judge_nearness(sum_charged(true));
  g_waiters.store(0);
  g_starting.store(0);
  gate::change(0, gate::kWaiters);
  // Threads that were exiting in the parent are not in the child (this one may be).
  for (std::atomic<pid_t> &slot : g_exiting) slot.store(0);
  g_exiting_count.store(self.budget.exiting ? 1 : 0);
  if (self.budget.exiting) g_exiting[0].store(static_cast<pid_t>(gettid()));
  else gate::change(0, gate::kExiting);
  g_freed = PTHREAD_COND_INITIALIZER;  // a parent thread may have been waiting on it
  postfork_parent();
}

void watch_threads() {
  if (g_watching.exchange(true)) return;
  if (g_limit.load() == 0 && g_arena_limit.load() == 0) {
    // No exact sums without a limit: the estimate starts from jemalloc's own count.
    HeapTotals heap;
    read_heap_totals(&heap);
    note_live(static_cast<int64_t>(heap.allocated));
  }
  join(t_state);
}

bool watching() { return g_watching.load(std::memory_order_relaxed); }

Peak peak() {
  return Peak{static_cast<size_t>(g_peak.load(std::memory_order_relaxed) > 0
                                      ? g_peak.load(std::memory_order_relaxed)
                                      : 0),
              g_peak_at_ns.load(std::memory_order_relaxed)};
}

size_t charged_estimate() {
  const int64_t live = g_live_estimate.load(std::memory_order_relaxed);
  return live > 0 ? static_cast<size_t>(live) : 0;
}

}  // namespace budget
}  // namespace allocscope
