// preload_reclaim_test.cc: reclaimers under the preload: which run (NORECLAIM and
// NORECLAIM_CLASS exclude them), what a reclaimer's own allocations may do (never recurse,
// use the emergency allowance), and registering and removing them.
#include <errno.h>
#include <stdlib.h>

#include <gtest/gtest.h>

#include "allocscope.h"
#include "allocscope.hpp"
#include "preload_support.h"

namespace {

using preload_support::kMiB;
using preload_support::Reclaimable;

// The policy tests' fixture, named after this file's area.
using Reclaim = preload_support::PolicyTest;

TEST_F(Reclaim, ReclaimerOfAnExcludedClassIsSkipped) {
  Reclaimable fs, io;
  add_reclaimer(&fs, 3);
  add_reclaimer(&io, 4);
  fill_budget();
  {
    allocscope::Scope nofs(ALLOCSCOPE_NORECLAIM_CLASS(3));
    EXPECT_EQ(allocscope_alloc(kMiB, ALLOCSCOPE_NORETRY), nullptr);
  }
  EXPECT_EQ(fs.calls.load(), 0);
  EXPECT_EQ(io.calls.load(), 1);
  {
    allocscope::Scope none(ALLOCSCOPE_NORECLAIM);
    EXPECT_EQ(allocscope_alloc(kMiB, ALLOCSCOPE_NORETRY), nullptr);
  }
  EXPECT_EQ(fs.calls.load(), 0);
  EXPECT_EQ(io.calls.load(), 1);
}

TEST_F(Reclaim, AllocationInsideAReclaimerNeverRecursesAndMayUseTheEmergencyAllowance) {
  Reclaimable r;
  r.allocate_inside = true;
  add_reclaimer(&r);
  fill_budget();
  ASSERT_EQ(allocscope_config("emergency:2M"), 0);
  EXPECT_EQ(allocscope_alloc(kMiB, ALLOCSCOPE_NORETRY), nullptr);
  EXPECT_EQ(r.calls.load(), 1);
  EXPECT_EQ(r.nested.load(), 0);
  EXPECT_EQ(r.scope_seen & (ALLOCSCOPE_NORECLAIM | ALLOCSCOPE_MEMALLOC),
            ALLOCSCOPE_NORECLAIM | ALLOCSCOPE_MEMALLOC);
  EXPECT_NE(r.inner_allocation, nullptr) << "MEMALLOC may dip into the emergency allowance";
  // Outside a reclaimer, the same allocation has no emergency allowance.
  EXPECT_EQ(allocscope_alloc(512 << 10, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN), nullptr);
  // NOMEMALLOC wins over MEMALLOC.
  EXPECT_EQ(allocscope_alloc(512 << 10, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN |
                                            ALLOCSCOPE_MEMALLOC | ALLOCSCOPE_NOMEMALLOC),
            nullptr);
  void *p = allocscope_alloc(512 << 10, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_MEMALLOC);
  EXPECT_NE(p, nullptr);
  free(p);
  free(r.inner_allocation);
}

TEST_F(Reclaim, ReclaimerRemoveAndBadArguments) {
  EXPECT_EQ(allocscope_reclaimer_add("x", 16, Reclaimable::reclaim, nullptr), -EINVAL);
  EXPECT_EQ(allocscope_reclaimer_add("x", 0, nullptr, nullptr), -EINVAL);
  Reclaimable r;
  int id = allocscope_reclaimer_add("x", 0, Reclaimable::reclaim, &r);
  ASSERT_GT(id, 0);
  EXPECT_EQ(allocscope_reclaimer_remove(id), 0);
  EXPECT_EQ(allocscope_reclaimer_remove(id), -ENOENT);
  fill_budget();
  EXPECT_EQ(allocscope_alloc(kMiB, ALLOCSCOPE_NORETRY | ALLOCSCOPE_NOWARN), nullptr);
  EXPECT_EQ(r.calls.load(), 0) << "a removed reclaimer is never called";
}

}  // namespace
