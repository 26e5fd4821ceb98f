// pool.cc: see pool.h.
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <new>

#include "callsite.h"
#include "counters.h"
#include "engine.h"
#include "mutex.h"
#include "options.h"
#include "report.h"
#include "resolve.h"
#include "sys.h"
#include "thread_state.h"

// The pool and its held-back array are one engine allocation, made under the creating
// thread's policy like the elements: memory the caller asked for, charged and policed.
struct allocscope_pool {
  allocscope::Mutex mutex{allocscope::LockRank::kPool};  // guards held and elements[]
  pthread_cond_t returned;          // free_element() kept an element
  size_t elem_size;
  unsigned min_nr;
  unsigned held ABSL_GUARDED_BY(mutex);  // elements[0, held) are held back
  void **elements;                  // min_nr slots, just after this struct (guarded by mutex)
  std::atomic<int64_t> out{0};      // handed out, not yet back through free_element
  allocscope_pool *next = nullptr;  // every live pool, for fork (under g_pools_mutex)
  allocscope_pool *prev = nullptr;
};

namespace allocscope {
namespace pool {

namespace {

auto &g_pool_counters = stats::g_counters.pools;

// How long a waiting allocation sleeps before trying the allocator again: mempool's
// io_schedule_timeout(5*HZ), since memory may have been freed to the budget meanwhile.
constexpr uint64_t kWaitSeconds = 5;

Mutex g_pools_mutex{LockRank::kPoolList};
allocscope_pool *g_pools ABSL_GUARDED_BY(g_pools_mutex) = nullptr;

void *attempt(const allocscope_pool *pool, const char *name, Flags call,
              const void *callsite) {
  Request r(name, pool->elem_size, callsite);
  r.call = call;
  return allocate(r);
}

// The last held-back element, or nullptr if none is.
void *take_held(allocscope_pool *pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool->mutex) {
  if (pool->held == 0) return nullptr;
  stats::bump(g_pool_counters.from_held);
  g_pool_counters.held.fetch_sub(1, std::memory_order_relaxed);
  return pool->elements[--pool->held];
}

// Frees the held-back elements and the pool itself (create's failure path, destroy). No
// other thread can see the pool: it is not yet, or no longer, in use.
void free_pool(allocscope_pool *pool) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (unsigned i = 0; i < pool->held; ++i) release(pool->elements[i]);
  pthread_cond_destroy(&pool->returned);
  pool->~allocscope_pool();
  release(pool);
}

// Waits until free_element() returns an element or kWaitSeconds pass.
void wait_for_return(allocscope_pool *pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool->mutex) {
  timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += kWaitSeconds;
  stats::bump(g_pool_counters.waits);
  const sys::CancelDeferral no_cancel;  // pthread_cond_clockwait is a cancellation point
  pthread_cond_clockwait(&pool->returned, pool->mutex.native(), CLOCK_MONOTONIC, &deadline);
}

}  // namespace

allocscope_pool *create(size_t elem_size, unsigned min_nr, const void *callsite) {
  char where[256];
  if (elem_size == 0) {
    stats::bump(stats::g_counters.misuse);
    format_call_site(callsite, where, sizeof(where));
    report("allocscope_pool_create(0, %u): elem_size must be at least 1; at %s", min_nr, where);
    errno = EINVAL;
    return nullptr;
  }
  const unsigned nr = min_nr != 0 ? min_nr : 1;  // the kernel keeps at least one, too
  size_t total;
  const size_t max_size = g_config.max_size.load(std::memory_order_relaxed);
  if (__builtin_mul_overflow(elem_size, nr, &total) || total > max_size) {
    format_call_site(callsite, where, sizeof(where));
    report("allocscope_pool_create(%zu, %u): %u elements of %zu bytes are above max_size %zu; "
           "at %s",
           elem_size, min_nr, nr, elem_size, max_size, where);
    errno = ENOMEM;
    return nullptr;
  }

  void *memory = allocate(
      Request("allocscope_pool_create", sizeof(allocscope_pool) + nr * sizeof(void *), callsite));
  if (memory == nullptr) return nullptr;  // ENOMEM, reported by the engine (unless NOWARN)
  auto *pool = new (memory) allocscope_pool;
  pthread_cond_init(&pool->returned, nullptr);
  pool->elem_size = elem_size;
  pool->min_nr = nr;
  pool->elements = reinterpret_cast<void **>(pool + 1);
  // Allocated outside the pool's lock (nothing allocates holding it), published under it.
  unsigned filled = 0;
  while (filled < nr) {
    void *elem = attempt(pool, "allocscope_pool_create", 0, callsite);
    if (elem == nullptr) break;
    pool->elements[filled++] = elem;
  }
  {
    MutexLock lock(pool->mutex);
    pool->held = filled;
  }
  if (filled < nr) {
    free_pool(pool);
    errno = ENOMEM;
    return nullptr;
  }

  {
    MutexLock lock(g_pools_mutex);
    pool->next = g_pools;
    if (g_pools != nullptr) g_pools->prev = pool;
    g_pools = pool;
  }
  stats::bump(g_pool_counters.live);
  stats::bump(g_pool_counters.held, nr);
  return pool;
}

void *alloc_element(allocscope_pool *pool, Flags flags, const void *callsite) {
  if (pool == nullptr) {
    errno = EINVAL;
    return nullptr;
  }
  const int saved_errno = errno;  // failed attempts set it; a success leaves it as it was
  const Flags light = (flags & ~kContractMask) | ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN |
                      ALLOCSCOPE_NOMEMALLOC;
  void *elem = attempt(pool, "allocscope_pool_alloc", light, callsite);

  if (elem == nullptr) {
    // What the caller's contract allows once nothing is held back. Resolved outside the
    // pool's lock: the rules' caller lookup may take the loader's lock.
    const Contract contract = thread_policy(t_state, flags, callsite).contract;
    Flags full = flags | ALLOCSCOPE_NOWARN | ALLOCSCOPE_NOMEMALLOC;
    if (contract == Contract::kNofail)  // see pool.h; and still never fault-injected
      full = (full & ~kContractMask) | ALLOCSCOPE_RETRY_MAYFAIL | ALLOCSCOPE_NOFAULT;
    for (;;) {
      pool->mutex.lock();
      elem = take_held(pool);
      pool->mutex.unlock();
      if (elem != nullptr) {
        if (flags & ALLOCSCOPE_ZERO) memset(elem, 0, pool->elem_size);
        break;
      }
      if (contract == Contract::kNowait) {
        stats::bump(g_pool_counters.failures);
        errno = ENOMEM;
        return nullptr;
      }
      elem = attempt(pool, "allocscope_pool_alloc", full, callsite);
      if (elem != nullptr) break;
      MutexLock lock(pool->mutex);
      if (pool->held == 0) wait_for_return(pool);  // checked under the lock: no lost wake-up
    }
  }
  pool->out.fetch_add(1, std::memory_order_relaxed);
  errno = saved_errno;
  return elem;
}

void free_element(allocscope_pool *pool, void *elem) {
  if (elem == nullptr) return;
  if (pool == nullptr) return release(elem);
  bool keep;
  {
    MutexLock lock(pool->mutex);
    // Freed twice: it would be handed out twice. (Found when the first free kept it,
    // which is whenever the pool was short: the case mempool users hit.)
    for (unsigned i = 0; i < pool->held; ++i) {
      if (pool->elements[i] != elem) continue;
      stats::bump(stats::g_counters.misuse);
      report("allocscope_pool_free(%p, %p): the element is already back in the pool (freed "
             "twice); ignored; thread %d",
             static_cast<void *>(pool), elem, static_cast<int>(gettid()));
      return;
    }
    pool->out.fetch_sub(1, std::memory_order_relaxed);
    keep = pool->held < pool->min_nr;
    if (keep) {
      pool->elements[pool->held++] = elem;
      AS_DEBUG_ASSERT(pool->held <= pool->min_nr);  // a pool holds at most min_nr
      stats::bump(g_pool_counters.held);
      pthread_cond_signal(&pool->returned);  // one element, one waiter
    }
  }
  if (!keep) release(elem);
}

void destroy(allocscope_pool *pool, const void *callsite) {
  if (pool == nullptr) return;
  {
    MutexLock lock(g_pools_mutex);
    if (pool->prev != nullptr) pool->prev->next = pool->next;
    else g_pools = pool->next;
    if (pool->next != nullptr) pool->next->prev = pool->prev;
  }

  const int64_t out = pool->out.load(std::memory_order_relaxed);
  if (out > 0) {
    char where[256];
    format_call_site(callsite, where, sizeof(where));
    report("allocscope_pool_destroy(%p): %lld element%s of %zu bytes still out (not returned "
           "with allocscope_pool_free); they stay valid, release them with free(); thread %d; "
           "at %s",
           static_cast<void *>(pool), static_cast<long long>(out), out == 1 ? "" : "s",
           pool->elem_size, static_cast<int>(gettid()), where);
  }
  {
    MutexLock lock(pool->mutex);
    g_pool_counters.held.fetch_sub(pool->held, std::memory_order_relaxed);
  }
  g_pool_counters.live.fetch_sub(1, std::memory_order_relaxed);
  free_pool(pool);
}

// fork(): a thread of the parent may hold a pool's lock; holding them all across fork()
// leaves each one free in the child.
void prefork() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  g_pools_mutex.lock();
  for (allocscope_pool *p = g_pools; p != nullptr; p = p->next) p->mutex.lock();
}
void postfork_parent() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  for (allocscope_pool *p = g_pools; p != nullptr; p = p->next) p->mutex.unlock();
  g_pools_mutex.unlock();
}
void postfork_child() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  // Threads that were waiting in the parent do not exist in the child.
  for (allocscope_pool *p = g_pools; p != nullptr; p = p->next)
    p->returned = PTHREAD_COND_INITIALIZER;
  postfork_parent();
}

}  // namespace pool
}  // namespace allocscope
