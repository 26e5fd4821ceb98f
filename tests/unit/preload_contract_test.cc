// preload_contract_test.cc: the four failure contracts (NOWAIT, NORETRY and normal,
// RETRY_MAYFAIL) and NOWARN, under the preload: over a full budget, what one allocation
// returns, errno, how long it takes, how many reclaim passes it runs, what it reports.
// NOFAIL has its own file (preload_nofail_test.cc).
#include <errno.h>
#include <stdlib.h>

#include <string>

#include <gtest/gtest.h>

#include "allocscope.h"
#include "allocscope.hpp"
#include "preload_support.h"

namespace {

using preload_support::kMiB;
using preload_support::Reclaimable;
using test_support::Clock;
using test_support::ms_since;

// The policy tests' fixture, named after this file's area.
using Contract = preload_support::PolicyTest;

TEST_F(Contract, NowaitFailsFastWithoutReclaim) {
  Reclaimable r;
  add_reclaimer(&r);
  fill_budget();
  const auto start = Clock::now();
  errno = 0;
  EXPECT_EQ(allocscope_alloc(kMiB, ALLOCSCOPE_NOWAIT), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  {
    allocscope::Scope nowait(ALLOCSCOPE_NOWAIT);
    errno = 0;
    EXPECT_EQ(malloc(kMiB), nullptr) << "a NOWAIT scope applies to plain malloc";
    EXPECT_EQ(errno, ENOMEM);
  }
  EXPECT_LT(ms_since(start), 100);
  EXPECT_EQ(r.calls.load(), 0);
  EXPECT_NE(log().find("allocscope_alloc(1048576) failed: limit"), std::string::npos) << log();
}

TEST_F(Contract, NowarnSilencesTheReport) {
  fill_budget();
  EXPECT_EQ(allocscope_alloc(kMiB, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN), nullptr);
  EXPECT_EQ(log().find("failed"), std::string::npos) << log();
}

TEST_F(Contract, NoretryAndNormalRunExactlyOnePass) {
  Reclaimable r;
  add_reclaimer(&r);
  fill_budget();
  EXPECT_EQ(allocscope_alloc(kMiB, ALLOCSCOPE_NORETRY), nullptr);
  EXPECT_EQ(r.calls.load(), 1);
  EXPECT_EQ(malloc(kMiB), nullptr) << "normal behaves as NORETRY";
  EXPECT_EQ(r.calls.load(), 2);
}

TEST_F(Contract, NoretrySucceedsWhenItsOnePassFreesEnough) {
  Reclaimable r;
  add_reclaimer(&r);
  fill_budget();
  r.blocks.push_back(take_ballast());
  void *p = allocscope_alloc(kMiB, ALLOCSCOPE_NORETRY);
  EXPECT_NE(p, nullptr);
  EXPECT_EQ(r.calls.load(), 1);
  free(p);
}

TEST_F(Contract, RetryMayfailGivesUpAfterRetryMaxPassesWithoutProgress) {
  Reclaimable r;
  add_reclaimer(&r);
  fill_budget();
  errno = 0;
  EXPECT_EQ(allocscope_alloc(kMiB, ALLOCSCOPE_RETRY_MAYFAIL), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_EQ(r.calls.load(), 3) << "retry_max:3";
}

TEST_F(Contract, RetryMayfailSucceedsWhenAReclaimerFreesEnough) {
  Reclaimable r;
  add_reclaimer(&r);
  fill_budget();
  // A 3 MiB request needs three 1 MiB reclaims: it keeps going while they make progress.
  for (int i = 0; i < 3; ++i) r.blocks.push_back(take_ballast());
  void *p = allocscope_alloc(3 * kMiB, ALLOCSCOPE_RETRY_MAYFAIL);
  EXPECT_NE(p, nullptr);
  EXPECT_GE(r.calls.load(), 3);
  free(p);
}

}  // namespace
