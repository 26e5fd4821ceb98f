// preload_check_failures_test.cc: allocscope_check_failures (shim/allocscope_testing.h)
// on small functions whose failure paths are right, leak, hide a failure, crash, or
// allocate while handling one. Run twice by meson: under the preload, where every test but
// the last runs, and without it, where only the last one does (the call is -ENOSYS).
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <atomic>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "allocscope.h"
#include "allocscope.hpp"
#include "allocscope_gtest.h"
#include "allocscope_testing.h"

// The compiler may drop a malloc whose block is freed unused: each block escapes here.
static void keep(void *p) { asm volatile("" : : "r"(p) : "memory"); }

// jemalloc size classes, so usable size == requested and leaks are these exact sums.
static constexpr size_t kSizes[8] = {16, 32, 48, 64, 80, 96, 112, 128};

// The sample functions below: n allocations, checked; when one fails, the blocks before it
// are freed and the result is -1, unless the sample slips there in one of three ways.
struct Sample {
  int n;
  size_t size;         // every block's size; 0: kSizes[i]
  int forgets_at;      // returns -1 without freeing the blocks before it (a leak)
  int absorbs_at;      // goes on without the block (a failure hidden as success)
  int trusts_at;       // writes to the block unchecked (NULL: SIGSEGV)
  int benign_at = -1;  // allocates the block in a NOFAULT scope (and does without it)
};

// Exported (extern "C", outside the anonymous namespace; the test links with
// export_dynamic) and never inlined, so that dladdr names it in the GoogleTest helper's
// message as the function whose malloc failed.
extern "C" [[gnu::noinline]] int allocate_sample(const Sample &s) {
  void *blocks[8] = {};
  for (int i = 0; i < s.n; ++i) {
    {
      const allocscope_cookie_t scope = allocscope_save(i == s.benign_at ? ALLOCSCOPE_NOFAULT : 0);
      blocks[i] = malloc(s.size != 0 ? s.size : kSizes[i]);
      allocscope_restore(scope);
    }
    if (i == s.trusts_at) *static_cast<volatile char *>(blocks[i]) = 'x';
    if (blocks[i] == nullptr && i != s.absorbs_at && i != s.benign_at) {
      if (i == s.forgets_at) return -1;  // the slip: blocks[0 .. i-1] stay allocated
      for (int j = 0; j < i; ++j) free(blocks[j]);
      return -1;
    }
    keep(blocks[i]);
  }
  for (int i = 0; i < s.n; ++i) free(blocks[i]);
  return 0;
}

namespace {

// Eight allocations (16 to 128 bytes) whose error path after the 5th forgets the first
// four: a C function's typical slip.
int leaks_after_the_fifth(void *) { return allocate_sample({8, 0, 4, -1, -1}); }
// The same without the slip.
int frees_everything(void *) { return allocate_sample({8, 0, -1, -1, -1}); }
// Five allocations; the third is an optional cache and its failure is absorbed.
int absorbs_the_third(void *) { return allocate_sample({5, 64, -1, 2, -1}); }
// Four allocations; the third is used without a check.
int trusts_the_third(void *) { return allocate_sample({4, 48, -1, -1, 2}); }
// Five allocations; the third, optional, is exempt from failure as SQLite's benign mallocs.
int exempts_the_third(void *) { return allocate_sample({5, 64, -1, -1, -1, 2}); }

// Two allocations; when the second fails, the error path allocates a message (and copes
// if that fails too, which it counts).
int g_message_failures = 0;
int allocates_in_its_error_path(void *) {
  void *a = malloc(32);
  if (a == nullptr) return -1;
  void *b = malloc(32);
  if (b == nullptr) {
    char *message = static_cast<char *>(malloc(64));
    if (message == nullptr) ++g_message_failures;
    else snprintf(message, 64, "no memory for b");
    keep(message);
    free(message);
    free(a);
    return -2;
  }
  keep(b);
  free(b);
  free(a);
  return 0;
}

// Every point the callback saw.
struct Seen {
  std::vector<allocscope_check_point> points;  // pointers cleared
  std::vector<std::string> top_frame;          // stack_names[0], "" if none
  std::vector<std::string> functions;
};
int remember(const allocscope_check_point *p, void *arg) {
  Seen &seen = *static_cast<Seen *>(arg);
  allocscope_check_point copy = *p;
  copy.stack = nullptr;
  copy.stack_names = nullptr;
  copy.function = nullptr;
  seen.points.push_back(copy);
  seen.top_frame.push_back(p->frames > 0 ? p->stack_names[0] : "");
  seen.functions.push_back(p->function);
  return 0;
}

// A report as one line: a test compares all of it at once, and a failure shows all of it.
std::string text(const allocscope_check_report &r) {
  return "allocations " + std::to_string(r.allocations) + ", points " + std::to_string(r.points) +
         ", errors " + std::to_string(r.errors) + ", successes " + std::to_string(r.successes) +
         ", leaks " + std::to_string(r.leaks) + ", first_leak " + std::to_string(r.first_leak) +
         ", leaked_bytes " + std::to_string(r.leaked_bytes);
}
std::string text(unsigned allocations, unsigned points, unsigned errors, unsigned successes,
                 unsigned leaks, unsigned first_leak, long long leaked_bytes) {
  return text(allocscope_check_report{allocations, points, errors, successes, leaks, first_leak,
                                      leaked_bytes});
}

class CheckFailures : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!allocscope_active()) GTEST_SKIP() << "needs LD_PRELOAD=liballocscope.so";
  }
};

TEST_F(CheckFailures, AnErrorPathThatForgetsToFreeIsALeakAtItsPoint) {
  allocscope_check_report r;
  Seen seen;
  ASSERT_EQ(allocscope_check_failures_each(leaks_after_the_fifth, nullptr, 0, &r, remember, &seen), 0);
  // The first four blocks, at their usable sizes (jemalloc's counters count those).
  long long expected = 0;
  for (int i = 0; i < 4; ++i) {
    void *p = malloc(kSizes[i]);
    expected += static_cast<long long>(malloc_usable_size(p));
    free(p);
  }
  EXPECT_EQ(expected, 16 + 32 + 48 + 64);
  EXPECT_EQ(text(r), text(8, 8, 8, 0, 1, 5, expected));

  ASSERT_EQ(seen.points.size(), 8u);
  const allocscope_check_point &fifth = seen.points[4];
  EXPECT_EQ(fifth.index, 5u);
  EXPECT_EQ(fifth.nth, 5u);
  EXPECT_EQ(fifth.thread, 0u);
  EXPECT_EQ(fifth.failed, 1u);
  EXPECT_EQ(fifth.outcome, ALLOCSCOPE_CHECK_RETURNED);
  EXPECT_EQ(fifth.value, -1);
  EXPECT_EQ(fifth.leaked_bytes, expected);
  EXPECT_EQ(fifth.size, 80u);
  EXPECT_EQ(seen.functions[4], "malloc");
  // The injection's call stack starts in the function that called malloc, in this program.
  EXPECT_THAT(seen.top_frame[4], ::testing::StartsWith("preload_check_failures_test+0x"));
  for (size_t i = 0; i < 8; ++i) {
    if (i == 4) continue;
    EXPECT_EQ(seen.points[i].leaked_bytes, 0) << "point " << i + 1;
  }
}

TEST_F(CheckFailures, AFunctionThatFreesEverythingErrsAtEveryPointAndLeaksNothing) {
  allocscope_check_report r;
  ASSERT_EQ(allocscope_check_failures(frees_everything, nullptr, 0, &r), 0);
  EXPECT_EQ(text(r), text(8, 8, 8, 0, 0, 0, 0));
}

TEST_F(CheckFailures, AnAbsorbedFailureIsASuccess) {
  allocscope_check_report r;
  Seen seen;
  ASSERT_EQ(allocscope_check_failures_each(absorbs_the_third, nullptr, 0, &r, remember, &seen), 0);
  EXPECT_EQ(text(r), text(5, 5, 4, 1, 0, 0, 0));
  ASSERT_EQ(seen.points.size(), 5u);
  EXPECT_EQ(seen.points[2].value, 0);
  EXPECT_EQ(seen.points[2].failed, 1u);
}

TEST_F(CheckFailures, ABenignAllocationInANofaultScopeIsNoPoint) {
  allocscope_check_report r;
  ASSERT_EQ(allocscope_check_failures(exempts_the_third, nullptr, 0, &r), 0);
  EXPECT_EQ(text(r), text(4, 4, 4, 0, 0, 0, 0));
}

TEST_F(CheckFailures, ForkTurnsACrashIntoAReportedPoint) {
  allocscope_check_report r;
  Seen seen;
  ASSERT_EQ(allocscope_check_failures_each(trusts_the_third, nullptr, ALLOCSCOPE_CHECK_FORK, &r,
                                           remember, &seen),
            0);
  // Still here: the crash was the child's.
  // Points 1, 2 and 4 erred; point 3 neither erred nor succeeded: it crashed.
  EXPECT_EQ(text(r), text(4, 4, 3, 0, 0, 0, 0));
  ASSERT_EQ(seen.points.size(), 4u);
  EXPECT_EQ(seen.points[2].outcome, ALLOCSCOPE_CHECK_SIGNALED);
  EXPECT_EQ(seen.points[2].value, SIGSEGV);
  // The child sent the injection before it crashed.
  EXPECT_EQ(seen.points[2].size, 48u);
  EXPECT_THAT(seen.top_frame[2], ::testing::StartsWith("preload_check_failures_test+0x"));
  for (size_t i : {0, 1, 3}) {
    EXPECT_EQ(seen.points[i].outcome, ALLOCSCOPE_CHECK_RETURNED);
    EXPECT_EQ(seen.points[i].value, -1);
  }
}

TEST_F(CheckFailures, ForkReportsAnExitAndMeasuresLeaksInTheChild) {
  auto exits_at_the_second = [](void *) -> int {
    void *a = malloc(32);
    if (a == nullptr) return -1;
    void *b = malloc(32);
    if (b == nullptr) exit(3);
    free(b);
    free(a);
    return 0;
  };
  allocscope_check_report r;
  Seen seen;
  ASSERT_EQ(allocscope_check_failures_each(exits_at_the_second, nullptr, ALLOCSCOPE_CHECK_FORK,
                                           &r, remember, &seen),
            0);
  ASSERT_EQ(seen.points.size(), 2u);
  EXPECT_EQ(seen.points[1].outcome, ALLOCSCOPE_CHECK_EXITED);
  EXPECT_EQ(seen.points[1].value, 3);

  // And a leak found in a child is the same leak as in process.
  ASSERT_EQ(allocscope_check_failures(leaks_after_the_fifth, nullptr, ALLOCSCOPE_CHECK_FORK, &r), 0);
  EXPECT_EQ(text(r), text(8, 8, 8, 0, 1, 5, 16 + 32 + 48 + 64));
}

TEST_F(CheckFailures, PersistentReachesAllocationsInTheErrorPath) {
  allocscope_check_report r;
  Seen seen;
  g_message_failures = 0;
  ASSERT_EQ(allocscope_check_failures_each(allocates_in_its_error_path, nullptr, 0, &r, remember,
                                           &seen),
            0);
  EXPECT_EQ(g_message_failures, 0) << "once: the error path's allocation succeeds";
  ASSERT_EQ(seen.points.size(), 2u);
  EXPECT_EQ(seen.points[1].failed, 1u);

  seen = Seen{};
  ASSERT_EQ(allocscope_check_failures_each(allocates_in_its_error_path, nullptr,
                                           ALLOCSCOPE_CHECK_PERSISTENT, &r, remember, &seen),
            0);
  EXPECT_EQ(g_message_failures, 1) << "persistent: the message's allocation fails too";
  EXPECT_EQ(text(r), text(2, 2, 2, 0, 0, 0, 0));
  ASSERT_EQ(seen.points.size(), 2u);
  EXPECT_EQ(seen.points[0].failed, 1u);
  EXPECT_EQ(seen.points[1].failed, 2u);
  EXPECT_EQ(seen.points[1].value, -2);
}

TEST_F(CheckFailures, AResidueEveryCallKeepsIsNoLeak) {
  // A cache that grows by one 64-byte entry per call, as an interning table might: the
  // counted run keeps 64 bytes, so a point keeping 64 is no leak, and one keeping 64 + 32
  // leaks 32.
  static std::vector<void *> *cache = new std::vector<void *>;
  cache->reserve(1000);
  auto grows = [](void *) -> int {
    void *entry = malloc(64);
    if (entry == nullptr) return -1;
    void *scratch = malloc(32);
    if (scratch == nullptr) {  // keeps the entry (fine) and forgets nothing else
      cache->push_back(entry);
      return -1;
    }
    void *more = malloc(16);
    if (more == nullptr) {  // keeps the entry and strands scratch: 32 bytes leaked
      cache->push_back(entry);
      return -1;
    }
    free(more);
    free(scratch);
    cache->push_back(entry);
    return 0;
  };
  allocscope_check_report r;
  ASSERT_EQ(allocscope_check_failures(grows, nullptr, 0, &r), 0);
  EXPECT_EQ(text(r), text(3, 3, 3, 0, 1, 3, 32));
  for (void *p : *cache) free(p);
  cache->clear();
}

TEST_F(CheckFailures, ARegionLeftMappedIsALeakOfItsPages) {
  // kv regions are mmap, outside jemalloc's per-thread counters: the engine counts them.
  ASSERT_EQ(allocscope_config("kv_threshold:64K,kv_direct:256K"), 0);
  auto strands_a_region = [](void *) -> int {
    void *table = allocscope_kvmalloc(512 << 10, ALLOCSCOPE_NOWARN);
    if (table == nullptr) return -1;
    void *index = malloc(32);
    if (index == nullptr) return -1;  // the slip: table stays mapped
    keep(index);
    free(index);
    free(table);
    return 0;
  };
  allocscope_check_report r;
  Seen seen;
  const int rc = allocscope_check_failures_each(strands_a_region, nullptr, 0, &r, remember, &seen);
  allocscope_config("kv_direct:0");
  ASSERT_EQ(rc, 0);
  // Point 1: a failure injected into a kv allocation fails its arena attempt, and kv
  // sends it to a region anyway (fault.h): fn sees no failure.
  EXPECT_EQ(text(r), text(2, 2, 1, 1, 1, 2, 512 << 10));
}

TEST_F(CheckFailures, WhatFnSetsUpOnFirstUseIsNeitherAPointNorALeak) {
  // A table made on the first call only. Counted from the first call, there would be four
  // allocations and every point after the first would fail the allocation after its number.
  static void *table = nullptr;
  auto lazily_tabled = [](void *) -> int {
    if (table == nullptr) {
      table = malloc(256);
      if (table == nullptr) return -1;
    }
    void *a = malloc(32);
    if (a == nullptr) return -1;
    void *b = malloc(48);
    if (b == nullptr) return -1;  // the slip: a stays
    void *c = malloc(64);
    if (c == nullptr) {
      free(b);
      free(a);
      return -1;
    }
    keep(c);
    free(c);
    free(b);
    free(a);
    return 0;
  };
  allocscope_check_report r;
  Seen seen;
  ASSERT_EQ(allocscope_check_failures_each(lazily_tabled, nullptr, 0, &r, remember, &seen), 0);
  EXPECT_EQ(text(r), text(3, 3, 3, 0, 1, 2, 32));
  ASSERT_EQ(seen.points.size(), 3u);
  EXPECT_EQ(seen.points[0].size, 32u);
  EXPECT_EQ(seen.points[1].size, 48u);
  EXPECT_EQ(seen.points[2].size, 64u);
  free(table);
  table = nullptr;
}

// A worker thread's allocations: three, and when the third fails it forgets the first.
struct Worker {
  int result;
};
void *worker(void *arg) {
  Worker &w = *static_cast<Worker *>(arg);
  void *a = malloc(32);
  void *b = a != nullptr ? malloc(48) : nullptr;
  void *c = b != nullptr ? malloc(64) : nullptr;
  keep(a);
  keep(b);
  keep(c);
  w.result = c != nullptr ? 0 : -1;
  if (c == nullptr && b != nullptr) {
    free(b);  // the slip: a stays
    return nullptr;
  }
  free(c);
  free(b);
  free(a);
  return nullptr;
}
int starts_a_worker(void *) {
  Worker w{-1};
  pthread_t thread;
  if (pthread_create(&thread, nullptr, worker, &w) != 0) return -1;
  pthread_join(thread, nullptr);
  return w.result;
}

TEST_F(CheckFailures, AllThreadsCountsAndFailsTheThreadsFnStarts) {
  allocscope_check_report mine;
  ASSERT_EQ(allocscope_check_failures(starts_a_worker, nullptr, 0, &mine), 0);
  allocscope_check_report all;
  Seen seen;
  ASSERT_EQ(allocscope_check_failures_each(starts_a_worker, nullptr, ALLOCSCOPE_CHECK_ALL_THREADS,
                                           &all, remember, &seen),
            0);
  EXPECT_EQ(all.allocations, mine.allocations + 3);
  EXPECT_EQ(all.points, all.allocations);
  EXPECT_EQ(all.errors, all.points);
  EXPECT_EQ(all.leaks, 1u);
  EXPECT_EQ(all.leaked_bytes, 32);
  // The worker's points come after the calling thread's, numbered within the worker.
  ASSERT_EQ(seen.points.size(), all.points);
  const allocscope_check_point &last = seen.points.back();
  EXPECT_EQ(last.thread, 1u);
  EXPECT_EQ(last.nth, 3u);
  EXPECT_EQ(last.size, 64u);
  EXPECT_EQ(last.leaked_bytes, 32);
  EXPECT_EQ(all.first_leak, last.index);
  EXPECT_EQ(last.threads_running, 0u);
}

// A tree of threads whose start order changes from call to call while the work stays the
// same: fn starts A, A starts A1; fn also starts B. On odd calls A waits before starting A1
// (so B comes to run before A1), on even calls fn waits before starting B (A1 first). A1
// makes one allocation of 80 bytes, B two of 96; each reports a failure to fn.
std::atomic<int> g_tree_calls{0};
struct Tree {
  bool a_waits;
  int a = -1, a1 = -1, b = -1;
};
void sleep_a_little() {
  const timespec pause{0, 3 * 1000 * 1000};
  nanosleep(&pause, nullptr);
}
void *a1_thread(void *arg) {
  void *p = malloc(80);
  keep(p);
  static_cast<Tree *>(arg)->a1 = p != nullptr ? 0 : -1;
  free(p);
  return nullptr;
}
void *a_thread(void *arg) {
  Tree &tree = *static_cast<Tree *>(arg);
  if (tree.a_waits) sleep_a_little();
  pthread_t a1;
  if (pthread_create(&a1, nullptr, a1_thread, &tree) != 0) return nullptr;
  pthread_join(a1, nullptr);
  tree.a = 0;
  return nullptr;
}
void *b_thread(void *arg) {
  void *p = malloc(96);
  void *q = p != nullptr ? malloc(96) : nullptr;
  keep(p);
  keep(q);
  static_cast<Tree *>(arg)->b = q != nullptr ? 0 : -1;
  free(q);
  free(p);
  return nullptr;
}
int starts_a_tree(void *) {
  Tree tree;
  tree.a_waits = g_tree_calls.fetch_add(1) % 2 == 1;
  pthread_t a, b;
  if (pthread_create(&a, nullptr, a_thread, &tree) != 0) return -1;
  if (!tree.a_waits) sleep_a_little();
  const int rc = pthread_create(&b, nullptr, b_thread, &tree);
  pthread_join(a, nullptr);
  if (rc != 0) return -1;
  pthread_join(b, nullptr);
  return tree.a != 0 || tree.a1 != 0 || tree.b != 0 ? -1 : 0;
}

TEST_F(CheckFailures, AllThreadsFailsTheSameThreadsAllocationWhicheverStartsFirst) {
  // glibc keeps thread stacks for reuse, and a new one costs the creator an allocation (its
  // TLS block): the two orders differ in how many threads are alive at once, so both run
  // before the check (its warm-up is one call, one order).
  ASSERT_EQ(starts_a_tree(nullptr), 0);
  ASSERT_EQ(starts_a_tree(nullptr), 0);
  for (int i = 0; i < 3; ++i) {
    allocscope_check_report r;
    Seen seen;
    ASSERT_EQ(allocscope_check_failures_each(starts_a_tree, nullptr, ALLOCSCOPE_CHECK_ALL_THREADS,
                                             &r, remember, &seen),
              0);
    // Had a point found its thread by the order threads came to run, the target of B's
    // second allocation would be A1 on every other call, which has none: not reached, fn
    // succeeds. And each thread number must fail allocations of one size only.
    EXPECT_EQ(r.errors, r.points);
    EXPECT_EQ(r.successes, 0u);
    EXPECT_EQ(r.leaks, 0u);
    std::vector<size_t> size_of_thread(8, 0);
    int workers_points = 0;
    for (const allocscope_check_point &p : seen.points) {
      EXPECT_EQ(p.failed, 1u) << "point " << p.index << " was not reached";
      if (p.thread == 0 || p.size < 80) continue;  // the 32-byte blocks are pthread_create's
      ++workers_points;
      ASSERT_LT(p.thread, size_of_thread.size());
      if (size_of_thread[p.thread] == 0) size_of_thread[p.thread] = p.size;
      EXPECT_EQ(p.size, size_of_thread[p.thread]) << "point " << p.index;
    }
    EXPECT_EQ(workers_points, 3);
  }
}

TEST_F(CheckFailures, EachCanStopTheCheck) {
  allocscope_check_report r;
  auto stop_at_third = [](const allocscope_check_point *p, void *) { return p->index == 3 ? 1 : 0; };
  ASSERT_EQ(allocscope_check_failures_each(frees_everything, nullptr, 0, &r, stop_at_third, nullptr), 0);
  EXPECT_EQ(r.allocations, 8u);
  EXPECT_EQ(r.points, 3u);
}

TEST_F(CheckFailures, BadArguments) {
  allocscope_check_report r;
  EXPECT_EQ(allocscope_check_failures(nullptr, nullptr, 0, &r), -EINVAL);
  EXPECT_EQ(allocscope_check_failures(frees_everything, nullptr, 0, nullptr), -EINVAL);
  EXPECT_EQ(allocscope_check_failures(frees_everything, nullptr, 0x80, &r), -EINVAL);
  auto nests = [](void *) -> int {
    allocscope_check_report inner;
    return allocscope_check_failures(frees_everything, nullptr, 0, &inner) == -EBUSY ? 0 : 1;
  };
  ASSERT_EQ(allocscope_check_failures(nests, nullptr, 0, &r), 0);
  EXPECT_EQ(r.errors, 0u) << "a check inside fn is -EBUSY";
}

TEST_F(CheckFailures, CxxLambdasAndExceptions) {
  // operator new throws at its points; the exception is the lambda's error.
  const allocscope::CheckResult r = allocscope::check_failures([] {
    std::vector<std::string> words;
    for (int i = 0; i < 4; ++i) words.emplace_back(std::string(40, static_cast<char>('a' + i)));
  });
  ASSERT_EQ(r.status, 0);
  EXPECT_GE(r.report.points, 4u);
  EXPECT_EQ(r.report.errors, r.report.points);
  EXPECT_EQ(r.report.leaks, 0u);

  int calls = 0;
  const allocscope::CheckResult counted =
      allocscope::check_failures([&] { return malloc(1) != nullptr; }, 0,
                                 [&](const allocscope_check_point &) { ++calls; });
  EXPECT_EQ(counted.report.points, 1u);
  EXPECT_EQ(calls, 1);
  // The byte every successful call keeps is its residue, not a leak; the point's failed
  // malloc keeps nothing.
  EXPECT_EQ(counted.report.leaks, 0u);
  EXPECT_EQ(counted.report.errors, 1u);
}

// The GoogleTest helper's message: each failing point with its stack, the exported function
// named (the test links with export_dynamic), the rest with an addr2line command.
TEST_F(CheckFailures, TheGtestHelperPrintsEachFailingPointWithItsStack) {
  // (Not a tail call: the lambda's own frame, unexported, stays in the stack.)
  const allocscope::testing::CheckOutcome o = allocscope::testing::CheckFailures(
      [] {
        const int rc = leaks_after_the_fifth(nullptr);
        asm volatile("" : : : "memory");
        return rc;
      },
      0, false);
  const ::testing::AssertionResult result = allocscope::testing::FailuresHandled(o);
  EXPECT_FALSE(result);
  const std::string message = result.message();
  EXPECT_THAT(message, ::testing::HasSubstr("1 of 8 failure points leaked or crashed"));
  EXPECT_THAT(message, ::testing::HasSubstr("point 5 (malloc(80) failed): fn returned -1, leaked 160 bytes"));
  EXPECT_THAT(message, ::testing::HasSubstr("#0 preload_check_failures_test+0x"));
  EXPECT_THAT(message, ::testing::HasSubstr("allocate_sample+0x"));
  EXPECT_THAT(message, ::testing::HasSubstr("addr2line -f -C -e /"));

  const allocscope::testing::CheckOutcome hidden =
      allocscope::testing::CheckFailures([] { return absorbs_the_third(nullptr); }, 0, true);
  const std::string hidden_message = allocscope::testing::FailuresHandled(hidden).message();
  EXPECT_THAT(hidden_message, ::testing::HasSubstr("fn returned 0 (success although the allocation failed)"));

  ALLOCSCOPE_EXPECT_FAILURES_HANDLED(0, [] { return frees_everything(nullptr); });
  ALLOCSCOPE_EXPECT_FAILURES_REPORTED(ALLOCSCOPE_CHECK_FORK, [] { return frees_everything(nullptr); });
}

// Without the preload (the second meson test of this binary) the client library answers.
TEST(CheckFailuresWithoutPreload, IsENOSYSSoATestCanSkip) {
  if (allocscope_active()) GTEST_SKIP() << "runs without LD_PRELOAD";
  allocscope_check_report r;
  memset(&r, 0xff, sizeof(r));
  EXPECT_EQ(allocscope_check_failures(frees_everything, nullptr, 0, &r), -ENOSYS);
  EXPECT_EQ(r.points, 0u);
  EXPECT_EQ(r.leaked_bytes, 0);
  EXPECT_EQ(allocscope::check_failures([] { return 0; }).status, -ENOSYS);
}

}  // namespace
