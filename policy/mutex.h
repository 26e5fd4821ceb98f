// mutex.h: allocscope's lock, and the one order in which its locks are taken.
//
// A Mutex is a pthread mutex (constant-initialised: usable before any constructor runs,
// and inside malloc) with a rank in LockRank. The ranks are the lock order, written down
// as data, as jemalloc's witness.h does: a thread may take a lock only while every lock
// it holds has a lower rank (or the same rank, for kPool, whose locks are all taken
// together across fork()). The compiler checks who holds what (clang -Wthread-safety, run
// by scripts/reliability: ABSL_GUARDED_BY on the data, ABSL_EXCLUSIVE_LOCKS_REQUIRED on the
// functions); debug builds (ALLOCSCOPE_DEBUG, the sanitizer builds) check the order at
// run time. lifecycle.cc takes every lock in this order before fork() and releases them
// after it, so the child never inherits a lock held by a thread it does not have.
//
// When you add a lock: give it a rank here (where it fits the order: what it may be held
// across), and add its module's prefork/postfork hooks to lifecycle.cc's list.
#pragma once

#include <pthread.h>
#include <stdint.h>

#include "compiler.h"

namespace allocscope {

enum class LockRank : uint8_t {
  kConfig,              // control.cc: held while a configuration is applied to every module
  kReclaimRegistry,     // reclaim.cc: adding and removing reclaimers
  kPoolList,            // pool.cc: the list of live pools
  kPool,                // pool.cc: each pool's held-back elements
  kReserveArena,        // reserve.cc's premapped arena: provide/trim (sums the budget)
  kAtomicReserveArena,  // atomic_reserve.cc's premapped arena
  kBudget,              // budget.cc: the thread registry and the totals
  kBudgetWait,          // budget.cc: NOFAIL waiters
  kRegion,              // region.cc: the region table and window
  kCount
};

#ifdef ALLOCSCOPE_DEBUG
void witness_lock(LockRank rank);
void witness_unlock(LockRank rank);
#else
inline void witness_lock(LockRank) {}
inline void witness_unlock(LockRank) {}
#endif

class ABSL_LOCKABLE Mutex {
 public:
  constexpr explicit Mutex(LockRank rank) : rank_(rank) {}
  Mutex(const Mutex &) = delete;
  Mutex &operator=(const Mutex &) = delete;

  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    witness_lock(rank_);
    pthread_mutex_lock(&mutex_);
  }
  // For a caller that must not wait (a NOWAIT allocation refilling the atomic reserve).
  bool try_lock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    if (pthread_mutex_trylock(&mutex_) != 0) return false;
    witness_lock(rank_);
    return true;
  }
  void unlock() ABSL_UNLOCK_FUNCTION() {
    pthread_mutex_unlock(&mutex_);
    witness_unlock(rank_);
  }
  // For pthread_cond_*wait, which the analysis cannot follow: the caller holds it.
  pthread_mutex_t *native() { return &mutex_; }

 private:
  pthread_mutex_t mutex_ = PTHREAD_MUTEX_INITIALIZER;
  const LockRank rank_;
};

// Holds a Mutex for its lifetime.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex &m) ABSL_EXCLUSIVE_LOCK_FUNCTION(m) : m_(m) { m_.lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { m_.unlock(); }
  MutexLock(const MutexLock &) = delete;
  MutexLock &operator=(const MutexLock &) = delete;

 private:
  Mutex &m_;
};

}  // namespace allocscope
