// reclaim.cc: see reclaim.h.
#include "reclaim.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include <atomic>

#include "counters.h"
#include "gate.h"
#include "heap_stats.h"
#include "mutex.h"
#include "thread_state.h"

namespace allocscope {
namespace reclaim {
namespace {

struct Reclaimer {
  std::atomic<int> id;  // 0 = free slot
  std::atomic<unsigned> klass;  // written by add() while a pass may read a freed slot
  allocscope_reclaim_fn fn;
  void *arg;
  char name[32];
  std::atomic<bool> busy;  // running on some thread
};

Reclaimer g_reclaimers[kMaxReclaimers];
std::atomic<int> g_next_id{1};
std::atomic<int> g_registered{0};
// Serialises add/remove; a pass reads slots without it (ids are published last).
Mutex g_registry_mutex{LockRank::kReclaimRegistry};

bool excluded(const Reclaimer &r, Flags flags) {
  return (flags & ALLOCSCOPE_NORECLAIM) || (flags & ALLOCSCOPE_NORECLAIM_CLASS(r.klass));
}

// Runs one reclaimer in reclaim context: not in the engine (its allocations follow
// policy) but with NORECLAIM|MEMALLOC added to its scope.
size_t call(Reclaimer &r, int id, size_t wanted) {
  ThreadState &t = t_state;
  const Flags saved_scope = t.scope.flags;
  const uint32_t saved_in_engine = t.in_engine;
  const int saved_running = t.running_reclaimer;
  t.scope.flags |= ALLOCSCOPE_NORECLAIM | ALLOCSCOPE_MEMALLOC;
  t.in_engine = 0;
  t.running_reclaimer = id;
  const size_t freed = r.fn(r.arg, wanted);
  t.running_reclaimer = saved_running;
  t.in_engine = saved_in_engine;
  t.scope.flags = saved_scope;
  return freed;
}

}  // namespace

int add(const char *name, unsigned klass, allocscope_reclaim_fn fn, void *arg) {
  if (fn == nullptr || klass > 15) return -EINVAL;
  int result = -ENOSPC;
  g_registry_mutex.lock();
  for (Reclaimer &r : g_reclaimers) {
    // A removed reclaimer may still be finishing a call: its slot is not free yet.
    if (r.id.load() != 0 || r.busy.load()) continue;
    r.klass = klass;
    r.fn = fn;
    r.arg = arg;
    strncpy(r.name, name != nullptr ? name : "", sizeof(r.name) - 1);
    r.name[sizeof(r.name) - 1] = '\0';
    result = g_next_id.fetch_add(1);
    r.id.store(result, std::memory_order_release);
    g_registered.fetch_add(1);
    break;
  }
  g_registry_mutex.unlock();
  gate::publish_reclaimers(g_registered.load());
  return result;
}

int remove(int id) {
  if (id <= 0) return -ENOENT;
  Reclaimer *found = nullptr;
  g_registry_mutex.lock();
  for (Reclaimer &r : g_reclaimers) {
    if (r.id.load() != id) continue;
    r.id.store(0, std::memory_order_release);
    g_registered.fetch_sub(1);
    found = &r;
    break;
  }
  g_registry_mutex.unlock();
  if (found == nullptr) return -ENOENT;
  gate::publish_reclaimers(g_registered.load());
  // A pass that already picked it may still be running it; wait that out (outside the
  // lock: the reclaimer may itself add or remove), unless that pass is this thread's own
  // (a reclaimer removing itself).
  if (t_state.running_reclaimer != id)
    while (found->busy.load(std::memory_order_acquire)) sched_yield();
  return 0;
}

int registered() { return g_registered.load(std::memory_order_relaxed); }

size_t run_pass(size_t wanted, Flags flags, bool backend_failed) {
  size_t freed = 0;
  for (Reclaimer &r : g_reclaimers) {
    if (freed >= wanted) break;
    const int id = r.id.load(std::memory_order_acquire);
    if (id == 0 || excluded(r, flags)) continue;
    bool expected = false;
    if (!r.busy.compare_exchange_strong(expected, true, std::memory_order_acquire)) continue;
    if (r.id.load(std::memory_order_acquire) == id) {
      const size_t got = call(r, id, wanted - freed);
      freed += got;
      stats::bump(stats::g_counters.reclaimer_calls);
    }
    r.busy.store(false, std::memory_order_release);
  }
  if (backend_failed) freed += purge_heap();
  return freed;
}

void prefork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_registry_mutex.lock(); }
void postfork_parent() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_registry_mutex.unlock(); }
void postfork_child() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  // Reclaimers that were running on other threads are not running in the child.
  for (Reclaimer &r : g_reclaimers) r.busy.store(false);
  g_registry_mutex.unlock();
}

}  // namespace reclaim
}  // namespace allocscope
