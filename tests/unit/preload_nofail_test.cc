// preload_nofail_test.cc: NOFAIL under the preload: it waits for another thread to free,
// reports its stalls, overdraws the limit after nofail_overdraw_ms, is demoted above
// nofail_max, still fails size caps, and at a call site inside a NOWAIT scope follows
// nofail_in_nowait.
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <new>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "allocscope.h"
#include "allocscope.hpp"
#include "preload_support.h"

namespace {

using preload_support::kMiB;
using test_support::Clock;
using test_support::in_child;
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

// policy:nofail with no limit: jemalloc itself refuses (a lowered RLIMIT_AS). While only
// failure handling is engaged, malloc, plain new, realloc and calloc call jemalloc and
// test its result (gate.h: checked); a NULL must still reach the engine, whose NOFAIL loop
// backs off until the address space comes back (another thread raises the limit). The
// same call without NOFAIL fails at once: the lowered limit really refuses it.
enum class Entry { kMalloc, kNew, kRealloc, kCalloc };

void *call(Entry entry, void *old, size_t size) {
  switch (entry) {
    case Entry::kMalloc: return malloc(size);
    case Entry::kNew: return ::operator new(size, std::nothrow);
    case Entry::kRealloc: return realloc(old, size);
    case Entry::kCalloc: return calloc(1, size);
  }
  return nullptr;
}

int nofail_waits_for_jemalloc(Entry entry) {
  constexpr size_t kBig = 64 * kMiB;
  volatile size_t big = kBig;  // not a constant the compiler could reason about
  if (allocscope_config("policy:nofail,stall_warn_ms:0") != 0) return 10;
  std::atomic<bool> lowered{false};
  std::thread raiser([&lowered] {  // started first: its stack needs address space too
    while (!lowered.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
    if (setrlimit(RLIMIT_AS, &unlimited) != 0) _exit(11);
  });
  void *old = malloc(kMiB);
  const rlimit lower{test_support::statm().size + 16 * kMiB, RLIM_INFINITY};
  if (old == nullptr || setrlimit(RLIMIT_AS, &lower) != 0) return 12;
  if (allocscope_config("policy:normal") != 0) return 13;
  if (call(entry, old, big) != nullptr || errno != ENOMEM) return 14;
  if (allocscope_config("policy:nofail") != 0) return 15;
  const unsigned long long waits = preload_support::stat("waits", "nofail");
  lowered = true;
  const auto start = Clock::now();
  void *p = call(entry, old, big);
  const int64_t waited = ms_since(start);
  raiser.join();
  if (p == nullptr) return 16;
  if (waited < 150) return 17;
  if (preload_support::stat("waits", "nofail") <= waits) return 18;
  return 0;
}

TEST(NofailWithoutLimit, EachCheckedEntryPointWaitsWhenJemallocRefuses) {
  ASSERT_PRELOADED();
  for (Entry entry : {Entry::kMalloc, Entry::kNew, Entry::kRealloc, Entry::kCalloc}) {
    EXPECT_EQ(in_child([entry] { return nofail_waits_for_jemalloc(entry); }, 20), 0)
        << "entry " << static_cast<int>(entry)
        << ": 14 the lowered RLIMIT_AS did not refuse; 16 NULL under NOFAIL; 17 returned "
           "without waiting; 18 the NOFAIL loop did not wait";
  }
}

}  // namespace
