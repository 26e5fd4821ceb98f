// preload_nofail_test.cc: NOFAIL under the preload: it waits for another thread to free,
// reports its stalls, overdraws the limit after nofail_overdraw_ms, is demoted above
// nofail_max, still fails size caps, and at a call site inside a NOWAIT scope follows
// nofail_in_nowait.
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "allocscope.h"
#include "allocscope.hpp"
#include "preload_support.h"

namespace {

using preload_support::kMiB;
using test_support::Clock;
using test_support::ms_since;

// The policy tests' fixture, named after this file's area.
using Nofail = preload_support::PolicyTest;

TEST_F(Nofail, NofailBlocksUntilAnotherThreadFrees) {
  fill_budget();
  std::atomic<bool> freed{false};
  void *to_free = take_ballast();
  void *second = take_ballast();
  std::thread helper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    freed = true;
    free(to_free);
    free(second);
  });
  const auto start = Clock::now();
  void *p = allocscope_alloc(kMiB, ALLOCSCOPE_NOFAIL);
  const int64_t waited = ms_since(start);
  EXPECT_NE(p, nullptr);
  EXPECT_TRUE(freed.load()) << "returned before the other thread freed anything";
  EXPECT_GE(waited, 250);
  EXPECT_LT(waited, 5000);
  helper.join();
  free(p);
}

TEST_F(Nofail, NofailReportsItsStallsWithABacktrace) {
  ASSERT_EQ(allocscope_config("stall_warn_ms:100"), 0);
  fill_budget();
  void *to_free = take_ballast();
  std::thread helper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(450));
    free(to_free);
  });
  void *p = allocscope_alloc(kMiB, ALLOCSCOPE_NOFAIL);
  helper.join();
  EXPECT_NE(p, nullptr);
  free(p);
  const std::string text = log();
  EXPECT_GE(count(text, "allocscope_alloc(1048576): NOFAIL stalled for "), 2) << text;
  EXPECT_NE(text.find("memory limit reached); thread "), std::string::npos) << text;
  EXPECT_NE(text.find("; at preload_nofail_test+0x"), std::string::npos) << text;
  allocscope_config("stall_warn_ms:0");
}

// Another thread exists (it could free memory), so NOFAIL waits before it overdraws. (With
// no other thread it overdraws at once: preload_robustness_test.)
TEST_F(Nofail, NofailOverdrawsTheLimitAfterNofailOverdrawMs) {
  ASSERT_EQ(allocscope_config("nofail_overdraw_ms:200"), 0);
  fill_budget();
  std::atomic<bool> done{false};
  std::thread other([&done] {
    while (!done.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  const auto start = Clock::now();
  void *p = allocscope_alloc(kMiB, ALLOCSCOPE_NOFAIL);
  EXPECT_NE(p, nullptr);
  EXPECT_GE(ms_since(start), 150);
  EXPECT_NE(log().find("overdrawing it"), std::string::npos) << log();
  done = true;
  other.join();
  free(p);
  allocscope_config("nofail_overdraw_ms:0");
}

TEST_F(Nofail, NofailAboveNofailMaxIsDemoted) {
  ASSERT_EQ(allocscope_config("nofail_max:1M"), 0);
  fill_budget();
  EXPECT_EQ(allocscope_alloc(2 * kMiB, ALLOCSCOPE_NOFAIL | ALLOCSCOPE_NOWARN), nullptr);
  EXPECT_NE(log().find("NOFAIL above nofail_max 1048576, demoted to retry_mayfail"),
            std::string::npos)
      << log();
  allocscope_config("nofail_max:2147483647");
}

TEST_F(Nofail, SizeCapsFailEvenNofail) {
  errno = 0;
  volatile size_t huge = static_cast<size_t>(PTRDIFF_MAX) + 1;
  EXPECT_EQ(allocscope_alloc(huge, ALLOCSCOPE_NOFAIL), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  volatile size_t half = SIZE_MAX / 2;
  EXPECT_EQ(allocscope_calloc(half, 3, ALLOCSCOPE_NOFAIL), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_NE(log().find("size above max_size"), std::string::npos) << log();
}

TEST_F(Nofail, CallSiteNofailInANowaitScopeIsReportedOncePerSiteAndWaits) {
  allocscope::Scope nowait(ALLOCSCOPE_NOWAIT);
  for (int i = 0; i < 3; ++i) {
    void *p = allocscope_alloc(100, ALLOCSCOPE_NOFAIL);  // one call site, three calls
    EXPECT_NE(p, nullptr);
    free(p);
  }
  EXPECT_EQ(count(log(), "call-site NOFAIL inside a NOWAIT scope"), 1) << log();
  ASSERT_EQ(allocscope_config("nofail_in_nowait:fail"), 0);
  fill_budget();
  EXPECT_EQ(allocscope_alloc(kMiB, ALLOCSCOPE_NOFAIL | ALLOCSCOPE_NOWARN), nullptr)
      << "nofail_in_nowait:fail turns it into NOWAIT";
}

}  // namespace
