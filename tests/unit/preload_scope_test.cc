// preload_scope_test.cc: scopes as a program sees them under the preload: nesting,
// LIFO restores and the report of one out of order, new threads starting with no scope,
// and rules (scope flags by caller module) steering plain malloc.
#include <errno.h>
#include <stdlib.h>

#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "allocscope.h"
#include "allocscope.hpp"
#include "preload_support.h"

namespace {

using preload_support::kMiB;
using preload_support::Reclaimable;

// The policy tests' fixture, named after this file's area.
using Scope = preload_support::PolicyTest;

TEST_F(Scope, ScopesNestAndRestoreExactlyWhatTheySet) {
  EXPECT_EQ(allocscope_current(), 0u);
  allocscope_cookie_t a = allocscope_save(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  allocscope_cookie_t b = allocscope_save(ALLOCSCOPE_NOWARN | ALLOCSCOPE_NORECLAIM);
  EXPECT_EQ(allocscope_current(), ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN | ALLOCSCOPE_NORECLAIM);
  allocscope_cookie_t c = allocscope_clear(ALLOCSCOPE_NOWAIT);
  EXPECT_EQ(allocscope_current(), ALLOCSCOPE_NOWARN | ALLOCSCOPE_NORECLAIM);
  allocscope_restore(c);
  EXPECT_EQ(allocscope_current(), ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN | ALLOCSCOPE_NORECLAIM);
  allocscope_restore(b);  // NOWARN was already set by a: b must not clear it
  EXPECT_EQ(allocscope_current(), ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  allocscope_restore(a);
  EXPECT_EQ(allocscope_current(), 0u);
  EXPECT_EQ(log(), "");
}

TEST_F(Scope, NewThreadsStartWithNoScope) {
  allocscope::Scope nowait(ALLOCSCOPE_NOWAIT);
  allocscope_flags_t seen = ~0u;
  std::thread([&] { seen = allocscope_current(); }).join();
  EXPECT_EQ(seen, 0u);
}

TEST_F(Scope, OutOfOrderRestoreIsReported) {
  allocscope_cookie_t outer = allocscope_save(ALLOCSCOPE_NOWAIT);
  allocscope_cookie_t inner = allocscope_save(ALLOCSCOPE_NORETRY);
  allocscope_restore(outer);
  EXPECT_NE(log().find("allocscope_restore out of order: the cookie is for depth 1, the thread "
                       "is at depth 2"),
            std::string::npos)
      << log();
  allocscope_restore(inner);
  allocscope_restore(0);
  EXPECT_NE(log().find("not a cookie"), std::string::npos) << log();
  while (allocscope_current() != 0) allocscope_restore(allocscope_clear(0));
  allocscope_clear(allocscope_current());
}

TEST(ScopeDeathTest, StrictMakesAnOutOfOrderRestoreFatal) {
  EXPECT_DEATH(
      {
        // The death test's child captures a pipe it made fd 2; reports follow fd 2 only
        // when told to (they go to the stderr the process started with).
        allocscope_config("log_file:/dev/stderr,strict:true");
        allocscope_cookie_t outer = allocscope_save(ALLOCSCOPE_NOWAIT);
        allocscope_save(ALLOCSCOPE_NORETRY);
        allocscope_restore(outer);
      },
      "out of order");
}

TEST_F(Scope, RulesGiveScopeFlagsByCallerModule) {
  Reclaimable r;
  add_reclaimer(&r);
  fill_budget();
  ASSERT_EQ(allocscope_config("rules:libnothing=nofail/preload_scope_test=nowait|nowarn"), 0);
  errno = 0;
  EXPECT_EQ(malloc(kMiB), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_EQ(r.calls.load(), 0) << "nowait from the rule: no reclaim pass";
  EXPECT_EQ(log().find("malloc(1048576) failed"), std::string::npos) << "nowarn from the rule";
  ASSERT_EQ(allocscope_config("rules:libnothing=nowait"), 0);
  EXPECT_EQ(malloc(kMiB), nullptr);
  EXPECT_EQ(r.calls.load(), 1) << "a rule for another module does not apply";
  ASSERT_EQ(allocscope_config("rules:none"), 0);
  EXPECT_EQ(allocscope_config("rules:=nofail"), -EINVAL);
  EXPECT_EQ(allocscope_config("rules:libx=bogus"), -EINVAL);
  EXPECT_EQ(allocscope_config("rules:libx"), -EINVAL);
}

}  // namespace
