// preload_pool_test.cc: allocscope_pool_* (mempool) under the preload, with real threads. Each test
// sets a limit a few MiB above what is charged, creates its pool while there is room, and
// then fills the budget until less than one element is left (but enough for a thread or
// a string): only the pool's held-back elements, and what other threads give back, can
// then serve a pool allocation. Reports go to a log file the test reads back.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "allocscope.h"
#include "allocscope.hpp"
#include "allocscope_gtest.h"
#include "preload_support.h"

namespace {

using preload_support::kMiB;
using test_support::Clock;
using test_support::in_child;
using test_support::ms_since;
using test_support::sleep_ms;

constexpr size_t kElem = 256 << 10;  // a jemalloc size class: usable size == requested

// Runs fn on another thread delay_ms after go(). The thread starts at once, while there is
// room for it; the destructor lets it run if go() was never called, and joins it.
class Later {
 public:
  Later(int delay_ms, std::function<void()> fn)
      : thread_([this, delay_ms, fn] {
          while (!go_.load()) sleep_ms(1);
          sleep_ms(delay_ms);
          fn();
        }) {}
  ~Later() {
    go();
    thread_.join();
  }
  void go() { go_ = true; }

 private:
  std::atomic<bool> go_{false};
  std::thread thread_;
};

class Pool : public preload_support::LimitedBudgetTest {
 protected:
  Pool() : LimitedBudgetTest(8 * kMiB) {}

  // Leaves between a quarter and a half of an element of room: a pool's light attempt
  // fails, small allocations (a string, a report) still succeed. The budget may find a
  // little more room later (jemalloc's thread caches, see budget.h), so tests start their
  // threads before filling it and fill it last.
  void fill_budget() {
    fill(kMiB, &ballast_);
    release_one();
    fill(kElem / 4, &ballast_);
    ASSERT_GE(ballast_.size(), 4u);
    release_one();
  }

  void release_one() {
    free(ballast_.back());
    ballast_.pop_back();
  }

  // The budget has no room for one element.
  static bool exhausted() {
    void *p = allocscope_alloc(kElem, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
    free(p);
    return p == nullptr;
  }
};

TEST_F(Pool, HandsOutItsHeldBackElementsAndNoMore) {
  allocscope_pool *pool = allocscope_pool_create(kElem, 4);
  ASSERT_NE(pool, nullptr);
  fill_budget();
  ASSERT_TRUE(exhausted());
  std::set<void *> got;
  for (int i = 0; i < 4; ++i) {
    errno = 0;
    void *p = allocscope_pool_alloc(pool, 0);
    ASSERT_NE(p, nullptr) << "held-back element " << i;
    EXPECT_EQ(errno, 0) << "a success leaves errno alone";
    memset(p, i, kElem);
    got.insert(p);
  }
  EXPECT_EQ(got.size(), 4u);

  const auto start = Clock::now();
  errno = 0;
  EXPECT_EQ(allocscope_pool_alloc(pool, ALLOCSCOPE_NOWAIT), nullptr) << "min_nr, no more";
  EXPECT_EQ(errno, ENOMEM);
  {
    allocscope::Scope nowait(ALLOCSCOPE_NOWAIT);
    errno = 0;
    EXPECT_EQ(allocscope_pool_alloc(pool, 0), nullptr) << "a NOWAIT scope applies too";
    EXPECT_EQ(errno, ENOMEM);
  }
  ASSERT_EQ(allocscope_config("rules:preload_pool_test=nowait"), 0);
  errno = 0;
  EXPECT_EQ(allocscope_pool_alloc(pool, 0), nullptr) << "and so does a rule for the caller";
  EXPECT_EQ(errno, ENOMEM);
  ASSERT_EQ(allocscope_config("rules:none"), 0);
  EXPECT_LT(ms_since(start), 100);

  for (void *p : got) allocscope_pool_free(pool, p);
  allocscope_pool_destroy(pool);
  EXPECT_EQ(log(), "") << "light attempts and NOWAIT pool failures are not reported";
}

TEST_F(Pool, AllocationWaitsForTheElementAnotherThreadReturns) {
  allocscope_pool *pool = allocscope_pool_create(kElem, 2);
  ASSERT_NE(pool, nullptr);
  void *a = nullptr;
  std::atomic<bool> returned{false};
  Later helper(300, [&] {
    returned = true;
    allocscope_pool_free(pool, a);
  });
  fill_budget();
  a = allocscope_pool_alloc(pool, 0);
  void *b = allocscope_pool_alloc(pool, 0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);

  helper.go();
  const auto start = Clock::now();
  void *c = allocscope_pool_alloc(pool, 0);
  const int64_t waited = ms_since(start);
  EXPECT_TRUE(returned.load()) << "returned before the other thread gave anything back";
  EXPECT_EQ(c, a) << "it gets the very element returned";
  EXPECT_GE(waited, 250);
  EXPECT_LT(waited, 4000) << "woken by the return, not by the 5 s timeout";
  allocscope_pool_free(pool, b);
  allocscope_pool_free(pool, c);
  allocscope_pool_destroy(pool);
  EXPECT_EQ(log().find("failed"), std::string::npos) << "a pool wait is no failure: " << log();
}

TEST_F(Pool, NofailWaitsEvenInANowaitScope) {
  allocscope_pool *pool = allocscope_pool_create(kElem, 1);
  ASSERT_NE(pool, nullptr);
  void *a = nullptr;
  std::atomic<bool> returned{false};
  Later helper(300, [&] {
    returned = true;
    allocscope_pool_free(pool, a);
  });
  fill_budget();
  a = allocscope_pool_alloc(pool, 0);
  ASSERT_NE(a, nullptr);
  void *c;
  helper.go();
  const auto start = Clock::now();
  {
    allocscope::Scope nowait(ALLOCSCOPE_NOWAIT);  // nofail_in_nowait:wait: NOFAIL wins
    c = allocscope_pool_alloc(pool, ALLOCSCOPE_NOFAIL);
  }
  const int64_t waited = ms_since(start);
  EXPECT_TRUE(returned.load());
  EXPECT_EQ(c, a);
  EXPECT_GE(waited, 250);

  ASSERT_EQ(allocscope_config("nofail_in_nowait:fail"), 0);
  {
    allocscope::Scope nowait(ALLOCSCOPE_NOWAIT);
    errno = 0;
    EXPECT_EQ(allocscope_pool_alloc(pool, ALLOCSCOPE_NOFAIL), nullptr)
        << "nofail_in_nowait:fail makes it NOWAIT";
    EXPECT_EQ(errno, ENOMEM);
  }
  allocscope_pool_free(pool, c);
  allocscope_pool_destroy(pool);
}

TEST_F(Pool, AWaiterTriesTheAllocatorAgainAfterFiveSeconds) {
  allocscope_pool *pool = allocscope_pool_create(kElem, 1);
  ASSERT_NE(pool, nullptr);
  // Memory comes back to the budget, not to the pool: nothing wakes the waiter early.
  void *ballast = nullptr;
  Later helper(500, [&] { free(ballast); });
  fill_budget();
  ballast = ballast_.front();  // 1 MiB
  ballast_.erase(ballast_.begin());
  void *a = allocscope_pool_alloc(pool, 0);
  ASSERT_NE(a, nullptr);
  helper.go();
  const auto start = Clock::now();
  void *c = allocscope_pool_alloc(pool, ALLOCSCOPE_NOFAIL);
  const int64_t waited = ms_since(start);
  ASSERT_NE(c, nullptr);
  EXPECT_NE(c, a) << "a fresh block: the pool's only element is still out";
  EXPECT_GE(waited, 4500);
  EXPECT_LT(waited, 8000);
  allocscope_pool_free(pool, a);
  allocscope_pool_free(pool, c);  // the pool is full: freed
  allocscope_pool_destroy(pool);
}

TEST_F(Pool, FreeRefillsTheHeldBackSetBeforeFreeing) {
  allocscope_pool *pool = allocscope_pool_create(kElem, 2);
  ASSERT_NE(pool, nullptr);
  void *extra = allocscope_pool_alloc(pool, 0);  // a normal allocation: there is room
  ASSERT_NE(extra, nullptr);
  fill_budget();
  void *a = allocscope_pool_alloc(pool, 0);
  void *b = allocscope_pool_alloc(pool, 0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(allocscope_pool_alloc(pool, ALLOCSCOPE_NOWAIT), nullptr);

  const size_t charged = allocscope_charged();
  allocscope_pool_free(pool, a);
  allocscope_pool_free(pool, b);
  EXPECT_GT(allocscope_charged() + kElem, charged) << "held back, so still charged";
  EXPECT_TRUE(exhausted());
  allocscope_pool_free(pool, extra);  // the pool holds min_nr: this one is freed
  EXPECT_LE(allocscope_charged() + kElem, charged);
  void *room = allocscope_alloc(kElem, ALLOCSCOPE_NOWAIT);
  EXPECT_NE(room, nullptr) << "the freed element's memory is back in the budget";

  for (int round = 0; round < 3; ++round) {
    ASSERT_TRUE(exhausted());
    void *x = allocscope_pool_alloc(pool, 0);
    void *y = allocscope_pool_alloc(pool, 0);
    EXPECT_NE(x, nullptr);
    EXPECT_NE(y, nullptr);
    EXPECT_EQ(allocscope_pool_alloc(pool, ALLOCSCOPE_NOWAIT), nullptr);
    allocscope_pool_free(pool, y);
    allocscope_pool_free(pool, x);
  }
  free(room);
  allocscope_pool_destroy(pool);
}

TEST_F(Pool, ZeroAppliesToHeldBackElements) {
  allocscope_pool *pool = allocscope_pool_create(kElem, 1);
  ASSERT_NE(pool, nullptr);
  fill_budget();
  auto *a = static_cast<unsigned char *>(allocscope_pool_alloc(pool, 0));
  ASSERT_NE(a, nullptr);
  memset(a, 0xab, kElem);
  allocscope_pool_free(pool, a);
  auto *z = static_cast<unsigned char *>(allocscope_pool_alloc(pool, ALLOCSCOPE_ZERO));
  ASSERT_EQ(z, a);
  size_t nonzero = 0;
  for (size_t i = 0; i < kElem; ++i) nonzero += z[i] != 0;
  EXPECT_EQ(nonzero, 0u);
  allocscope_pool_free(pool, z);
  allocscope_pool_destroy(pool);
}

TEST_F(Pool, ManyThreadsMakeProgressOnAFewElements) {
  constexpr int kThreads = 8, kRounds = 200;
  allocscope_pool *pool = allocscope_pool_create(kElem, 2);
  ASSERT_NE(pool, nullptr);
  // Threads start before the budget is full (starting one allocates); each holds at most
  // one element at a time, which is the contract that makes a pool deadlock-free.
  std::atomic<bool> go{false};
  std::atomic<int> done{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      while (!go.load()) sleep_ms(1);
      for (int i = 0; i < kRounds; ++i) {
        auto *p = static_cast<unsigned char *>(allocscope_pool_alloc(pool, 0));
        if (p == nullptr) {
          ++failures;
          continue;
        }
        p[0] = static_cast<unsigned char>(t);
        p[kElem - 1] = static_cast<unsigned char>(i);
        allocscope_pool_free(pool, p);
      }
      ++done;
    });
  fill_budget();
  const auto start = Clock::now();
  go = true;
  for (std::thread &t : threads) t.join();
  EXPECT_EQ(done.load(), kThreads);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_LT(ms_since(start), 20000);
  allocscope_pool_destroy(pool);
  EXPECT_EQ(log(), "");
}

TEST_F(Pool, DestroyWithElementsOutIsReportedAndTheyStayValid) {
  allocscope_pool *pool = allocscope_pool_create(kElem, 3);
  ASSERT_NE(pool, nullptr);
  void *a = allocscope_pool_alloc(pool, 0);
  void *b = allocscope_pool_alloc(pool, 0);
  void *c = allocscope_pool_alloc(pool, 0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_NE(c, nullptr);
  allocscope_pool_free(pool, c);
  allocscope_pool_destroy(pool);
  const std::string text = log();
  EXPECT_EQ(count(text, "allocscope_pool_destroy("), 1) << text;
  EXPECT_NE(text.find("2 elements of 262144 bytes still out"), std::string::npos) << text;
  EXPECT_NE(text.find("at preload_pool_test+0x"), std::string::npos) << text;
  memset(a, 1, kElem);
  memset(b, 1, kElem);
  free(a);
  free(b);

  allocscope_pool *clean = allocscope_pool_create(kElem, 2);
  ASSERT_NE(clean, nullptr);
  void *d = allocscope_pool_alloc(clean, 0);
  allocscope_pool_free(clean, d);
  allocscope_pool_destroy(clean);
  EXPECT_EQ(count(log(), "allocscope_pool_destroy("), 1) << "nothing out, nothing to report";
}

TEST_F(Pool, CreateUnderAnExhaustedBudgetFailsAndKeepsNothing) {
  fill_budget();
  const size_t before = allocscope_charged();
  errno = 0;
  EXPECT_EQ(allocscope_pool_create(kElem, 4), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_LT(allocscope_charged(), before + kElem);
  EXPECT_NE(log().find("allocscope_pool_create(262144) failed: limit"), std::string::npos)
      << log();

  // Room for some elements but not all: those it got are freed again.
  for (int i = 0; i < 2; ++i) {
    free(ballast_.front());
    ballast_.erase(ballast_.begin());
  }
  const size_t room = allocscope_charged();
  errno = 0;
  EXPECT_EQ(allocscope_pool_create(kElem, 32), nullptr) << "8 MiB do not fit";
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_LT(allocscope_charged(), room + kElem);
  void *p = allocscope_alloc(kMiB, ALLOCSCOPE_NOWAIT);
  EXPECT_NE(p, nullptr) << "the room is still there";
  free(p);
}

TEST_F(Pool, BadArguments) {
  errno = 0;
  EXPECT_EQ(allocscope_pool_create(0, 4), nullptr);
  EXPECT_EQ(errno, EINVAL);
  errno = 0;
  volatile size_t huge = SIZE_MAX / 2;
  EXPECT_EQ(allocscope_pool_create(huge, 4), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(allocscope_pool_create(static_cast<size_t>(PTRDIFF_MAX) + 1, 1), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  const std::string text = log();
  EXPECT_EQ(count(text, "\n"), 3) << "one line each: " << text;
  EXPECT_NE(text.find("allocscope_pool_create(0, 4): elem_size must be at least 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("4 elements of 9223372036854775807 bytes are above max_size"),
            std::string::npos)
      << text;

  errno = 0;
  EXPECT_EQ(allocscope_pool_alloc(nullptr, 0), nullptr);
  EXPECT_EQ(errno, EINVAL);
  allocscope_pool_destroy(nullptr);
  allocscope_pool_free(nullptr, malloc(16));  // freed, not leaked

  // min_nr 0 still holds one element, as the kernel's mempool does.
  allocscope_pool *pool = allocscope_pool_create(kElem, 0);
  ASSERT_NE(pool, nullptr);
  allocscope_pool_free(pool, nullptr);
  fill_budget();
  void *one = allocscope_pool_alloc(pool, 0);
  EXPECT_NE(one, nullptr);
  EXPECT_EQ(allocscope_pool_alloc(pool, ALLOCSCOPE_NOWAIT), nullptr);
  allocscope_pool_free(pool, one);
  allocscope_pool_destroy(pool);
}

TEST_F(Pool, ForkWhileAnotherThreadUsesThePool) {
  allocscope_pool *pool = allocscope_pool_create(64, 2);
  ASSERT_NE(pool, nullptr);
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop.load()) allocscope_pool_free(pool, allocscope_pool_alloc(pool, 0));
  });
  for (int i = 0; i < 100; ++i) {
    const int status = in_child([pool] {
      alarm(5);  // a lock left held by the churning thread would hang here
      void *p = allocscope_pool_alloc(pool, ALLOCSCOPE_NOWAIT);
      allocscope_pool_free(pool, p);
      allocscope_pool_destroy(pool);
      return p != nullptr ? 0 : 1;
    });
    ASSERT_LT(status, test_support::kKilledBy)
        << "child killed by signal " << status - test_support::kKilledBy;
    EXPECT_EQ(status, 0);
  }
  stop = true;
  churn.join();
  allocscope_pool_destroy(pool);
}

// allocscope_pool_create's failure paths, through the GoogleTest helper (allocscope_gtest.h):
// with each of its allocations failed in turn (the pool, then each held-back element) it
// must return NULL with ENOMEM and keep nothing: no leak, and no failure it hides.
TEST(PoolFailurePaths, CreateKeepsNothingWhicheverAllocationFails) {
  int calls = 0, wrong_errno = 0;  // counters, not containers: fn must not allocate for them
  ALLOCSCOPE_EXPECT_FAILURES_REPORTED(0, [&] {
    ++calls;
    allocscope_pool *pool = allocscope_pool_create(64, 8);
    if (pool == nullptr) {
      if (errno != ENOMEM) ++wrong_errno;
      return -1;
    }
    allocscope_pool_destroy(pool);
    return 0;
  });
  EXPECT_EQ(calls, 2 + 9) << "a warm-up and a counted run, then the pool and its 8 elements";
  EXPECT_EQ(wrong_errno, 0);
}

// An element's allocation may fail: the pool hands out a held-back element instead (a
// success by design, so _HANDLED: no leaks, no crashes), and returning it refills the pool.
// In a fork child per point, as a test of code that might crash would run.
TEST(PoolFailurePaths, AllocationFallsBackToTheHeldBackElementsWithoutLeaking) {
  allocscope_pool *pool = allocscope_pool_create(64, 2);
  ASSERT_NE(pool, nullptr);
  ALLOCSCOPE_EXPECT_FAILURES_HANDLED(ALLOCSCOPE_CHECK_FORK, [&] {
    void *a = allocscope_pool_alloc(pool, 0);
    void *b = allocscope_pool_alloc(pool, 0);
    if (a == nullptr || b == nullptr) return -1;  // never: two are held back
    allocscope_pool_free(pool, b);
    allocscope_pool_free(pool, a);
    return 0;
  });
  allocscope_pool_destroy(pool);
}

}  // namespace
