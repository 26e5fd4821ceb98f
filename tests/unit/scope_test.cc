// scope_test.cc: per-thread scopes (scope.h), linked directly: what a cookie holds (the
// bits its call changed, the depth, save or clear), restore undoing exactly that, nesting,
// restores out of LIFO order and restore(0) reported and what they do, and the scope
// counts the gate keeps (gate::bits()), including for a thread that exits inside a scope.
#include "scope.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "budget.h"
#include "counters.h"
#include "engine_support.h"
#include "gate.h"
#include "options.h"
#include "report.h"
#include "thread_state.h"

namespace allocscope {
namespace {

using engine_support::ReportCapture;

// scope.cc's cookie layout: the bits (0-31), the depth (32-46), the thread's tag (47-62),
// clear or save (63).
constexpr allocscope_cookie_t kClearBit = 1ull << 63;
constexpr uint32_t kMaxDepth = 0x7fff;

Flags bits_of(allocscope_cookie_t cookie) { return static_cast<Flags>(cookie); }
uint32_t depth_of(allocscope_cookie_t cookie) {
  return static_cast<uint32_t>(cookie >> 32) & kMaxDepth;
}
uint32_t tag_of(allocscope_cookie_t cookie) { return static_cast<uint32_t>(cookie >> 47) & 0xffff; }
bool is_clear(allocscope_cookie_t cookie) { return (cookie & kClearBit) != 0; }
// The cookie `c` would be if it carried another thread's tag (any other tag).
allocscope_cookie_t with_other_tag(allocscope_cookie_t c) {
  return c ^ (allocscope_cookie_t{1} << 50);
}

Flags current() { return t_state.scope.flags; }
uint32_t depth() { return t_state.scope.depth; }

allocscope_cookie_t save(Flags flags) { return scope::save(flags, nullptr); }

// Each test starts on a thread with no scope and nothing engaged, and leaves it so (a test
// that restores out of order leaves a depth behind: TearDown drops it).
class Scope : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_support::start_engine();
    ASSERT_EQ(current(), 0u);
    ASSERT_EQ(depth(), 0u);
    ASSERT_EQ(gate::bits(), 0u);
  }
  void TearDown() override {
    scope::clear(current());
    t_state.scope.depth = 0;
    g_config.strict.store(false);
    EXPECT_EQ(gate::bits(), 0u) << "the scope counts went back to zero";
  }
};

TEST_F(Scope, SaveRecordsTheBitsItSetAndTheDepth) {
  const allocscope_cookie_t a = save(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  EXPECT_EQ(current(), ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  EXPECT_EQ(bits_of(a), ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  EXPECT_EQ(depth_of(a), 1u);
  EXPECT_FALSE(is_clear(a));
  // NOWARN is already set: this save owns only NORECLAIM.
  const allocscope_cookie_t b = save(ALLOCSCOPE_NOWARN | ALLOCSCOPE_NORECLAIM);
  EXPECT_EQ(bits_of(b), ALLOCSCOPE_NORECLAIM);
  EXPECT_EQ(depth_of(b), 2u);
  EXPECT_EQ(depth(), 2u);
  // A save of nothing new still nests.
  const allocscope_cookie_t c = save(ALLOCSCOPE_NOWAIT);
  EXPECT_EQ(bits_of(c), 0u);
  EXPECT_EQ(depth_of(c), 3u);
  scope::restore(c);
  EXPECT_EQ(current(), ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN | ALLOCSCOPE_NORECLAIM);
  scope::restore(b);
  EXPECT_EQ(current(), ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN) << "b must not drop a's NOWARN";
  EXPECT_EQ(depth(), 1u);
  scope::restore(a);
  EXPECT_EQ(current(), 0u);
  EXPECT_EQ(depth(), 0u);
}

TEST_F(Scope, ClearRecordsTheBitsItDroppedAndRestorePutsBackOnlyThose) {
  ReportCapture capture;
  const allocscope_cookie_t s = save(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  const allocscope_cookie_t c = scope::clear(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_KV);
  EXPECT_TRUE(is_clear(c));
  EXPECT_EQ(bits_of(c), ALLOCSCOPE_NOWAIT) << "KV was not set: not the clear's to put back";
  EXPECT_EQ(depth_of(c), 2u);
  EXPECT_EQ(current(), ALLOCSCOPE_NOWARN);
  const allocscope_cookie_t inner = save(ALLOCSCOPE_KV);
  scope::restore(inner);
  scope::restore(c);
  EXPECT_EQ(current(), ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  EXPECT_EQ(depth(), 1u);
  scope::restore(s);
  EXPECT_EQ(current(), 0u);
  EXPECT_EQ(capture.text(), "") << "LIFO restores report nothing";
}

// ZERO is a call-site flag: a scope never holds it.
TEST_F(Scope, SaveIgnoresZero) {
  const allocscope_cookie_t c = save(ALLOCSCOPE_ZERO | ALLOCSCOPE_NOWARN);
  EXPECT_EQ(current(), ALLOCSCOPE_NOWARN);
  EXPECT_EQ(bits_of(c), ALLOCSCOPE_NOWARN);
  scope::restore(c);
}

TEST_F(Scope, DeepNestingUnwindsToNothing) {
  constexpr int kDepth = 1000;
  static allocscope_cookie_t cookies[kDepth];
  for (int i = 0; i < kDepth; ++i) {
    // Alternate between setting a class and clearing the one below it.
    cookies[i] = i % 3 == 2 ? scope::clear(ALLOCSCOPE_NORECLAIM_CLASS((i - 1) % 16))
                            : save(ALLOCSCOPE_NORECLAIM_CLASS(i % 16) | ALLOCSCOPE_NOWARN);
    ASSERT_EQ(depth_of(cookies[i]), static_cast<uint32_t>(i + 1));
  }
  for (int i = kDepth - 1; i >= 0; --i) scope::restore(cookies[i]);
  EXPECT_EQ(current(), 0u);
  EXPECT_EQ(depth(), 0u);
}

// Out of LIFO order: reported once per restore, with both depths, counted as misuse, and
// applied anyway; the depth becomes the cookie's, so the restores that follow line up.
TEST_F(Scope, OutOfOrderRestoreIsReportedAndApplied) {
  ReportCapture capture;
  const auto misuse = stats::get(stats::g_counters.misuse);
  const allocscope_cookie_t outer = save(ALLOCSCOPE_NOWAIT);
  const allocscope_cookie_t inner = save(ALLOCSCOPE_NORETRY);
  scope::restore(outer);
  EXPECT_EQ(current(), ALLOCSCOPE_NORETRY) << "applied: outer's NOWAIT is gone";
  EXPECT_EQ(depth(), 0u) << "the depth outer's save started from";
  EXPECT_EQ(stats::get(stats::g_counters.misuse), misuse + 1);
  const std::string tid = std::to_string(gettid());
  EXPECT_EQ(capture.text(),
            "allocscope: allocscope_restore out of order: the cookie is for depth 1, the thread "
            "is at depth 2 (restores must be LIFO); thread " + tid + "\n");
  scope::restore(inner);
  EXPECT_EQ(current(), 0u);
  EXPECT_EQ(depth(), 1u) << "the depth inner's save started from";
  EXPECT_EQ(stats::get(stats::g_counters.misuse), misuse + 2);
  EXPECT_NE(capture.text().find("the cookie is for depth 2, the thread is at depth 0"),
            std::string::npos)
      << capture.text();

  // A restore twice is out of order too.
  t_state.scope.depth = 0;
  const allocscope_cookie_t once = save(ALLOCSCOPE_NOWARN);
  scope::restore(once);
  scope::restore(once);
  EXPECT_EQ(stats::get(stats::g_counters.misuse), misuse + 3);
  EXPECT_EQ(current(), 0u);
}

// restore(0), any cookie of depth 0, and a cookie without this thread's tag (garbage,
// another thread's) are no cookies: reported, counted, not applied.
TEST_F(Scope, RestoreOfNoCookieIsReportedAndChangesNothing) {
  ReportCapture capture;
  const auto misuse = stats::get(stats::g_counters.misuse);
  const allocscope_cookie_t c = save(ALLOCSCOPE_NOWAIT);
  scope::restore(0);
  scope::restore(ALLOCSCOPE_NOWAIT);  // the flag, not a cookie: depth 0
  scope::restore(kClearBit | ALLOCSCOPE_KV);
  scope::restore(with_other_tag(c));  // the right depth, another tag
  scope::restore(c & ~(allocscope_cookie_t{0xffff} << 47));  // no tag at all
  EXPECT_EQ(current(), ALLOCSCOPE_NOWAIT);
  EXPECT_EQ(depth(), 1u);
  EXPECT_EQ(stats::get(stats::g_counters.misuse), misuse + 5);
  const std::string line = "allocscope: allocscope_restore: not a cookie from this thread's "
                           "allocscope_save or allocscope_clear; ignored; thread " +
                           std::to_string(gettid()) + "\n";
  EXPECT_EQ(capture.text(), line + line + line + line + line);
  scope::restore(c);
  EXPECT_EQ(current(), 0u);
}

// Every cookie of a thread carries its tag, and another thread's tag is another: a cookie
// restored on the wrong thread is refused there.
TEST_F(Scope, CookiesCarryTheThreadsTag) {
  const allocscope_cookie_t a = save(ALLOCSCOPE_NOWARN);
  const allocscope_cookie_t b = scope::clear(ALLOCSCOPE_NOWARN);
  EXPECT_NE(tag_of(a), 0u);
  EXPECT_EQ(tag_of(b), tag_of(a));
  allocscope_cookie_t theirs = 0;
  Flags after_foreign_restore = ~0u;
  std::thread([&] {
    ReportCapture capture;
    theirs = save(ALLOCSCOPE_NOWAIT);
    scope::restore(a);  // ours, not theirs
    after_foreign_restore = current();
    EXPECT_NE(capture.text().find("not a cookie from this thread's"), std::string::npos);
    scope::restore(theirs);
  }).join();
  EXPECT_EQ(after_foreign_restore, ALLOCSCOPE_NOWAIT) << "not applied on the other thread";
  EXPECT_NE(tag_of(theirs), tag_of(a));
  scope::restore(b);
  scope::restore(a);
  EXPECT_EQ(current(), 0u);
}

// Nesting deeper than the depth can count saturates: the cookies keep the largest depth
// instead of wrapping to 0 (which would make them no cookies at all).
TEST_F(Scope, DepthSaturatesInsteadOfWrapping) {
  allocscope_cookie_t last = 0;
  for (uint32_t i = 0; i < kMaxDepth + 100; ++i) last = save(ALLOCSCOPE_NOWARN);
  EXPECT_EQ(depth_of(last), kMaxDepth);
  EXPECT_EQ(depth(), kMaxDepth);
  ReportCapture capture;
  scope::restore(last);
  EXPECT_EQ(depth(), kMaxDepth - 1);
  EXPECT_EQ(capture.text(), "") << "the innermost restore is in order";
}

// Saving NOFAIL inside a NOWAIT scope is reported as a conflict: NOWAIT still wins for
// allocations without call-site flags (resolve.h, rule 3).
TEST_F(Scope, SavingNofailInsideNowaitIsAConflict) {
  ReportCapture capture;
  const auto conflicts = stats::get(stats::g_counters.conflicts);
  const allocscope_cookie_t a = save(ALLOCSCOPE_NOFAIL);
  const allocscope_cookie_t b = save(ALLOCSCOPE_NOWAIT);
  EXPECT_EQ(capture.text(), "") << "NOWAIT inside NOFAIL is no conflict";
  scope::restore(b);
  scope::restore(a);
  const allocscope_cookie_t c = save(ALLOCSCOPE_NOWAIT);
  const allocscope_cookie_t d = scope::save(ALLOCSCOPE_NOFAIL, reinterpret_cast<void *>(0x1234));
  EXPECT_EQ(current(), ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOFAIL) << "the save still applies";
  EXPECT_EQ(stats::get(stats::g_counters.conflicts), conflicts + 1);
  EXPECT_EQ(capture.text(),
            "allocscope: allocscope_save(NOFAIL) inside a NOWAIT scope at 0x1234: NOWAIT still "
            "wins for allocations without call-site flags\n");
  scope::restore(d);
  scope::restore(c);
}

// A scope that changes what happens on failure, that KV or a reserve serves, counts in the
// gate while it is in force, for all threads; a NOWAIT scope engages nothing here (only
// the atomic reserve cares).
TEST_F(Scope, ScopesEngageTheGateWhileInForce) {
  struct Case {
    Flags flags;
    uint32_t engaged;
  };
  for (const Case &c : {Case{ALLOCSCOPE_NOFAIL, gate::kOnFailure},
                        Case{ALLOCSCOPE_RETRY_MAYFAIL, gate::kOnFailure},
                        Case{ALLOCSCOPE_KV, gate::kKv},
                        Case{ALLOCSCOPE_RESERVE, gate::kReserveScope},
                        Case{ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NORETRY | ALLOCSCOPE_NOWARN, 0},
                        Case{ALLOCSCOPE_NOFAIL | ALLOCSCOPE_KV | ALLOCSCOPE_RESERVE,
                             gate::kOnFailure | gate::kKv | gate::kReserveScope}}) {
    const allocscope_cookie_t cookie = save(c.flags);
    EXPECT_EQ(gate::bits(), c.engaged) << c.flags;
    scope::restore(cookie);
    EXPECT_EQ(gate::bits(), 0u) << c.flags;
  }
  // Clearing NOFAIL takes its bit away until the clear is undone.
  const allocscope_cookie_t nofail = save(ALLOCSCOPE_NOFAIL | ALLOCSCOPE_KV);
  const allocscope_cookie_t cleared = scope::clear(ALLOCSCOPE_NOFAIL);
  EXPECT_EQ(gate::bits(), gate::kKv);
  scope::restore(cleared);
  EXPECT_EQ(gate::bits(), gate::kOnFailure | gate::kKv);
  // Nested saves of the same flag count once: one restore of the inner leaves it.
  const allocscope_cookie_t again = save(ALLOCSCOPE_NOFAIL);
  scope::restore(again);
  EXPECT_EQ(gate::bits(), gate::kOnFailure | gate::kKv);
  scope::restore(nofail);
  EXPECT_EQ(gate::bits(), 0u);
}

// Two threads' scopes: the bit stays until the last one ends. A new thread starts with no
// scope, and a thread that exits inside its scopes no longer counts.
TEST_F(Scope, EachThreadCountsAndExitDropsItsCount) {
  const allocscope_cookie_t mine = save(ALLOCSCOPE_NOWAIT);
  Flags seen = ~0u;
  uint32_t seen_depth = ~0u;
  std::thread([&] {
    seen = current();
    seen_depth = depth();
  }).join();
  EXPECT_EQ(seen, 0u) << "nothing is inherited";
  EXPECT_EQ(seen_depth, 0u);
  scope::restore(mine);

  std::atomic<int> stage{0};
  std::thread other([&] {
    save(ALLOCSCOPE_NOFAIL | ALLOCSCOPE_KV | ALLOCSCOPE_RESERVE);
    stage = 1;
    while (stage.load() != 2) std::this_thread::yield();
    // Exits without restoring.
  });
  while (stage.load() != 1) std::this_thread::yield();
  const allocscope_cookie_t nofail = save(ALLOCSCOPE_NOFAIL);
  scope::restore(nofail);
  EXPECT_EQ(gate::bits(), gate::kOnFailure | gate::kKv | gate::kReserveScope)
      << "the other thread's scope is still in force";
  stage = 2;
  other.join();
  EXPECT_EQ(gate::bits(), 0u) << "its exit dropped its counts";
}

TEST(ScopeDeathTest, StrictMakesAnOutOfOrderRestoreFatal) {
  // The death test's child captures a pipe it made fd 2; reports follow fd 2 only when
  // told to (they go to the stderr the process started with).
  EXPECT_DEATH(
      {
        set_report_file("/dev/stderr");
        g_config.strict.store(true);
        const allocscope_cookie_t outer = save(ALLOCSCOPE_NOWAIT);
        save(ALLOCSCOPE_NORETRY);
        scope::restore(outer);
      },
      "allocscope_restore out of order");
  EXPECT_DEATH(
      {
        set_report_file("/dev/stderr");
        g_config.strict.store(true);
        scope::restore(0);
      },
      "not a cookie");
}

// A thread the budget never joined (one not started through the preload's pthread_create:
// another library's constructor's, glibc's SIGEV_THREAD helper) may exit inside a scope:
// its exit handler gives back what it holds without reading jemalloc counters it never
// looked up. (At main's 6a4c01e it crashed there, in budget::thread_exit, reading them
// through null pointers, in a process that had never set a limit.)
TEST(ScopeDeathTest, AThreadThatNeverJoinedTheBudgetExitsInsideAScope) {
  engine_support::start_engine();
  ASSERT_EQ(budget::limit(), 0u) << "the crash was in a process that never set a limit";
  EXPECT_EXIT(
      {
        std::thread([] { save(ALLOCSCOPE_NOFAIL); }).join();
        exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace allocscope
