// preload_limit_test.cc: the memory limit under the preload: what is charged, small
// allocations (plain jemalloc calls while the limit is far) stopping at the limit and not
// past it, threads that start, exit or only free moving the limit near and far, and
// pthread_create failing with EAGAIN when its own allocation fails.
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "allocscope.h"
#include "allocscope.hpp"
#include "preload_support.h"

namespace {

using preload_support::kMiB;

// The policy tests' fixture, named after this file's area.
using Limit = preload_support::PolicyTest;
using preload_support::stats_contain;

TEST_F(Limit, ChargedFollowsAllocationsAndFrees) {
  const size_t before = allocscope_charged();
  void *p = malloc(3 * kMiB);
  memset(p, 1, 3 * kMiB);
  const size_t during = allocscope_charged();
  EXPECT_GE(during, before + 3 * kMiB);
  EXPECT_LE(during, before + 3 * kMiB + 64 * 1024);
  free(p);
  EXPECT_LE(allocscope_charged(), before + 64 * 1024);
}

// Small allocations are plain jemalloc calls while the limit is far (policy/budget.h):
// jemalloc's activity callback must still stop them at the limit, not past it. 1 KiB is a
// size class, so the charge is exactly what the loop allocated; this process has one
// thread, so the limit comes near (and every allocation is checked) only 96 KiB before
// it: a callback later than every 64 KiB could let the loop run past the limit. Whether
// it does depends on where the last callback falls, so four limits 16 KiB apart.
TEST_F(Limit, SmallAllocationsStopAtTheLimitNotPastIt) {
  std::vector<void *> blocks;
  blocks.reserve(8192);
  for (size_t shift = 0; shift < 64 * 1024; shift += 16 * 1024) {
    const size_t limit = allocscope_charged() + 4 * kMiB + shift;
    ASSERT_EQ(allocscope_limit_set(limit), 0);
    EXPECT_FALSE(stats_contain("limit_near"));
    void *p;
    errno = 0;
    while (blocks.size() < blocks.capacity() && (p = malloc(1024)) != nullptr)
      blocks.push_back(p);
    // Read everything before gtest allocates (which fails here), check after the frees.
    const int error = errno;
    const bool failed = blocks.size() < blocks.capacity();
    const size_t charged = allocscope_charged();
    const bool near = stats_contain("limit_near");
    const bool counted = !stats_contain("\"near\":0,");
    for (void *q : blocks) free(q);
    blocks.clear();
    ASSERT_TRUE(failed) << "no allocation failed";
    EXPECT_EQ(error, ENOMEM);
    EXPECT_LE(charged, limit) << "past the limit, shift " << shift;
    EXPECT_GT(charged + 64 * 1024, limit) << "failed well before the limit";
    EXPECT_TRUE(near) << "the limit came near";
    EXPECT_TRUE(counted) << "and that was counted";
    // Freeing 64 KiB and more calls the callback again: the limit is far again.
    EXPECT_FALSE(stats_contain("limit_near"));
  }
  void *after = malloc(1024);
  EXPECT_NE(after, nullptr);
  free(after);
}

// Every known thread may allocate up to 96 KiB unchecked, so the room a far limit needs
// grows with the threads: 48 idle threads bring a limit 4 MiB away near, and their exit
// takes it far again.
TEST_F(Limit, ThreadsThatStartAndExitMoveTheLimitNearAndFar) {
  ASSERT_EQ(allocscope_limit_set(allocscope_charged() + 4 * kMiB), 0);
  EXPECT_FALSE(stats_contain("limit_near"));
  std::atomic<bool> go{false};
  std::atomic<int> running{0};  // a thread has joined the budget before its body runs
  std::vector<std::thread> idle;
  for (int i = 0; i < 48; ++i)
    idle.emplace_back([&go, &running] {
      ++running;
      while (!go.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  while (running.load() < 48) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(stats_contain("limit_near")) << "48 x 96 KiB do not fit in 4 MiB";
  go = true;
  for (std::thread &t : idle) t.join();
  EXPECT_FALSE(stats_contain("limit_near")) << "the threads left";
}

// A thread that frees what another allocated, and allocates nothing itself, must bring
// the charge down: the preload makes every thread known to the budget when it starts.
// Here the thread starts with no limit set and the limit comes while it waits.
TEST_F(Limit, AThreadThatOnlyFreesIsCounted) {
  allocscope_limit_set(0);
  std::atomic<bool> go{false};
  std::vector<void *> blocks(256);
  std::thread freer([&] {
    while (!go.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (void *p : blocks) free(p);
  });
  ASSERT_EQ(allocscope_limit_set(allocscope_charged() + 8 * kMiB), 0);
  const size_t before = allocscope_charged();
  for (void *&p : blocks) p = malloc(16 << 10);
  EXPECT_GE(allocscope_charged() + 4096, before + 256 * (16 << 10));
  go = true;
  freer.join();
  EXPECT_LE(allocscope_charged(), before + 64 * 1024);
}

// pthread_create allocates what its new thread starts from (thread_start.cc): when that
// fails it returns EAGAIN, as glibc does when it lacks memory, and creates no thread.
TEST_F(Limit, PthreadCreateFailsWithEagainWhenItsAllocationFails) {
  static std::atomic<int> started{0};
  auto body = [](void *) -> void * {
    ++started;
    return nullptr;
  };
  pthread_t thread;
  ASSERT_EQ(allocscope_fail_nth(1), 0);
  EXPECT_EQ(pthread_create(&thread, nullptr, body, nullptr), EAGAIN);
  EXPECT_EQ(allocscope_fail_nth_left(), 0u) << "the injected failure happened";
  ASSERT_EQ(pthread_create(&thread, nullptr, body, nullptr), 0);
  pthread_join(thread, nullptr);
  EXPECT_EQ(started.load(), 1);
}

}  // namespace
