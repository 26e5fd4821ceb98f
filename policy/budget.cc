// budget.cc: see budget.h.
#include "budget.h"

#include <pthread.h>
#include <time.h>

#include "backend.h"
#include "heap_stats.h"

namespace allocscope {
namespace budget {

std::atomic<int64_t> g_charged{0};
std::atomic<uint32_t> g_generation{0};
std::atomic<int> g_waiters{0};

namespace {

std::atomic<int64_t> g_limit{0};
std::atomic<int64_t> g_emergency{0};

pthread_mutex_t g_limit_mutex = PTHREAD_MUTEX_INITIALIZER;
pthread_mutex_t g_wait_mutex = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t g_freed = PTHREAD_COND_INITIALIZER;
pthread_key_t g_exit_key;

int64_t net_of(const ThreadState &t) {
  return static_cast<int64_t>(*t.allocated - *t.deallocated);
}

void wake_waiters() {
  if (g_waiters.load(std::memory_order_relaxed) == 0) return;
  pthread_mutex_lock(&g_wait_mutex);
  pthread_cond_broadcast(&g_freed);
  pthread_mutex_unlock(&g_wait_mutex);
}

// A thread that exits gives back all its unused credit; its live blocks stay charged.
void on_thread_exit(void *arg) {
  auto *t = static_cast<ThreadState *>(arg);
  if (t->budget_generation == g_generation.load()) settle(*t, true);
  t->exited = true;
}

}  // namespace

// First charge of this thread under the current limit: its existing net allocation is
// already in the total (the baseline), so it starts with no credit.
void join(ThreadState &t) {
  if (t.allocated == nullptr) {
    size_t len = sizeof(t.allocated);
    je_mallctl("thread.allocatedp", &t.allocated, &len, nullptr, 0);
    len = sizeof(t.deallocated);
    je_mallctl("thread.deallocatedp", &t.deallocated, &len, nullptr, 0);
    pthread_setspecific(g_exit_key, &t);
  }
  t.credit_end = net_of(t);
  t.budget_generation = g_generation.load();
}

void init() { pthread_key_create(&g_exit_key, on_thread_exit); }

void prefork() {
  pthread_mutex_lock(&g_limit_mutex);
  pthread_mutex_lock(&g_wait_mutex);
}

void postfork_parent() {
  pthread_mutex_unlock(&g_wait_mutex);
  pthread_mutex_unlock(&g_limit_mutex);
}

void postfork_child() {
  g_waiters.store(0);
  g_freed = PTHREAD_COND_INITIALIZER;  // a parent thread may have been waiting on it
  postfork_parent();
}

void set_limit(size_t bytes) {
  pthread_mutex_lock(&g_limit_mutex);
  const bool was_set = g_limit.load() != 0;
  if (bytes == 0) {
    g_engaged.fetch_and(~kEngagedLimit);
  } else if (!was_set) {
    HeapTotals heap;
    read_heap_totals(&heap);
    g_charged.store(static_cast<int64_t>(heap.allocated));
    g_generation.fetch_add(1);
    g_engaged.fetch_or(kEngagedLimit);
  }
  g_limit.store(static_cast<int64_t>(bytes > INT64_MAX ? INT64_MAX : bytes));
  pthread_mutex_unlock(&g_limit_mutex);
  wake_waiters();  // a higher (or no) limit may satisfy them
}

size_t limit() { return static_cast<size_t>(g_limit.load()); }
void set_emergency(size_t bytes) {
  g_emergency.store(static_cast<int64_t>(bytes > INT64_MAX / 2 ? INT64_MAX / 2 : bytes));
}
size_t emergency() { return static_cast<size_t>(g_emergency.load()); }

size_t charged() {
  if (g_limit.load() == 0) {
    HeapTotals heap;
    read_heap_totals(&heap);
    return heap.allocated;
  }
  ThreadState &t = t_state;
  ensure_joined(t);
  settle(t, true);
  const int64_t c = g_charged.load();
  return c < 0 ? 0 : static_cast<size_t>(c);
}

bool try_charge(ThreadState &t, size_t size, bool memalloc, bool overdraw) {
  if (t.exited) return true;
  ensure_joined(t);
  const int64_t net = net_of(t);
  const int64_t want_exact = net + static_cast<int64_t>(size) - t.credit_end;
  if (want_exact <= 0) return true;
  int64_t cap = g_limit.load(std::memory_order_relaxed);
  if (cap == 0) return true;  // the limit was lifted meanwhile
  if (memalloc) cap += g_emergency.load(std::memory_order_relaxed);
  int64_t current = g_charged.load(std::memory_order_relaxed);
  for (;;) {
    // A batch of credit if it fits, else just what this allocation needs.
    int64_t want = want_exact + kBatch;
    if (!overdraw && current + want > cap) want = want_exact;
    if (!overdraw && current + want > cap) return false;
    if (g_charged.compare_exchange_weak(current, current + want, std::memory_order_relaxed)) {
      t.credit_end += want;
      return true;
    }
  }
}

void settle(ThreadState &t, bool all) {
  if (t.budget_generation != g_generation.load(std::memory_order_relaxed) || t.exited) return;
  const int64_t keep = all || g_waiters.load(std::memory_order_relaxed) != 0 ? 0 : kBatch;
  const int64_t give = t.credit_end - net_of(t) - keep;
  if (give <= 0) return;
  t.credit_end -= give;
  g_charged.fetch_sub(give, std::memory_order_relaxed);
  wake_waiters();
}

void wait_for_free(uint64_t timeout_ns) {
  g_waiters.fetch_add(1);
  timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += static_cast<time_t>(timeout_ns / 1000000000u);
  deadline.tv_nsec += static_cast<long>(timeout_ns % 1000000000u);
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&g_wait_mutex);
  pthread_cond_clockwait(&g_freed, &g_wait_mutex, CLOCK_MONOTONIC, &deadline);
  pthread_mutex_unlock(&g_wait_mutex);
  g_waiters.fetch_sub(1);
}

}  // namespace budget
}  // namespace allocscope
