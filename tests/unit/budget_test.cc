// budget_test.cc: the memory limit's arithmetic (budget.h), through its API, linked
// directly. jemalloc (the engine's renamed copy, backend.h) counts every byte this test
// allocates through it, exactly as it counts a preloaded program's; sizes here are jemalloc
// size classes, so a block's usable size is what was asked and every sum is exact:
// allowances refilled a batch ahead and refused past the limit, the emergency allowance and
// overdraw, bytes charged outside jemalloc, reserves, the arena's share, the limit coming
// near and going far (gate::kLimitNear), and threads that exit.
#include "budget.h"

#include <stdint.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "backend.h"
#include "counters.h"
#include "engine_support.h"
#include "gate.h"
#include "thread_state.h"

namespace allocscope {
namespace budget {
namespace {

constexpr size_t kKiB = 1 << 10;
constexpr size_t kMiB = 1 << 20;

bool near() { return gate::bits() & gate::kLimitNear; }

class Budget : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_support::start_engine();
    ASSERT_FALSE(gate::bits() & gate::kLimit) << "a previous test left a limit";
  }
  void TearDown() override {
    for (void *p : blocks_) je_free(p);
    blocks_.clear();
    set_limit(0);
    set_arena_limit(0);
    set_emergency(0);
    EXPECT_FALSE(gate::bits() & (gate::kLimit | gate::kLimitNear));
  }

  // Sets the limit `room` above what is charged now, and returns what was charged. (The
  // first limit takes what is live as its baseline; the second one moves the cap only.)
  static size_t limit_above_charged(size_t room) {
    if (!gate::limit_is_set()) set_limit(size_t{1} << 40);
    const size_t now = charged();
    set_limit(now + room);
    return now;
  }

  // A jemalloc block of `size` (a size class), freed by TearDown.
  void *allocate(size_t size) {
    void *p = je_malloc(size);
    EXPECT_NE(p, nullptr);
    EXPECT_EQ(je_sallocx(p, 0), size) << "not a size class";
    blocks_.push_back(p);
    return p;
  }
  void release(void *p) {
    je_free(p);
    blocks_.erase(std::find(blocks_.begin(), blocks_.end(), p));
  }

  // What the engine does for a checked allocation: the charge, then the allocation.
  bool charge_and_allocate(size_t size) {
    if (!try_charge(t_state, size, false, false)) return false;
    allocate(size);
    return true;
  }

  static int64_t allowance() { return t_state.budget.left; }

  std::vector<void *> blocks_;
};

TEST_F(Budget, ALimitEngagesTheAccountingAndZeroDisengagesIt) {
  set_limit(size_t{1} << 30);
  EXPECT_EQ(limit(), size_t{1} << 30);
  EXPECT_TRUE(gate::limit_is_set());
  EXPECT_EQ(gate::g_gate.direct_below.load(), gate::kLimitDirectMax + 1)
      << "small allocations stay direct while the limit is far";
  set_limit(0);
  EXPECT_EQ(limit(), 0u);
  EXPECT_FALSE(gate::bits() & (gate::kLimit | gate::kLimitNear));
  EXPECT_EQ(gate::g_gate.direct_below.load(), gate::up_to(gate::g_size_cap.load()))
      << "every size to max_size";
  // The arena limit alone engages it too: then only the arena's share has a cap.
  set_arena_limit(size_t{1} << 30);
  EXPECT_EQ(arena_limit(), size_t{1} << 30);
  EXPECT_TRUE(gate::limit_is_set());
  EXPECT_FALSE(try_charge(t_state, size_t{1} << 30, false, false));
  EXPECT_TRUE(charge_outside(size_t{64} << 30, false, false)) << "regions have no cap";
  uncharge_outside(size_t{64} << 30);
  set_arena_limit(0);
  EXPECT_FALSE(gate::limit_is_set());
  // Sizes beyond what the sums can hold are clamped.
  set_limit(SIZE_MAX);
  EXPECT_EQ(limit(), static_cast<size_t>(INT64_MAX));
  set_emergency(SIZE_MAX);
  EXPECT_EQ(emergency(), static_cast<size_t>(INT64_MAX / 2));
}

// A checked allocation takes from the thread's allowance; an empty allowance is refilled
// with the allocation plus a batch (kBatch) ahead. charged() counts live bytes, not
// allowances.
TEST_F(Budget, TryChargeRefillsABatchAhead) {
  const size_t c0 = limit_above_charged(16 * kMiB);
  EXPECT_EQ(allowance(), 0);
  ASSERT_TRUE(charge_and_allocate(128 * kKiB));
  EXPECT_EQ(allowance(), kBatch);
  EXPECT_EQ(charged(), c0 + 128 * kKiB);
  ASSERT_TRUE(charge_and_allocate(64 * kKiB));
  EXPECT_EQ(allowance(), 0) << "taken from the allowance";
  EXPECT_EQ(charged(), c0 + 192 * kKiB);
  ASSERT_TRUE(try_charge(t_state, 1, false, false));
  EXPECT_EQ(allowance(), kBatch);
  EXPECT_EQ(charged(), c0 + 192 * kKiB) << "an allowance is not charged until allocated";
  // Freeing brings the charge down at once (jemalloc counts the bytes freed).
  release(blocks_.front());
  EXPECT_EQ(charged(), c0 + 64 * kKiB);
}

// Near the limit, a refill gives what is left if that covers the allocation, and refuses
// (emptying the allowance) if it does not: never past the cap.
TEST_F(Budget, TryChargeStopsExactlyAtTheLimit) {
  const size_t c0 = limit_above_charged(kMiB);
  ASSERT_TRUE(charge_and_allocate(512 * kKiB));
  EXPECT_EQ(allowance(), kBatch);
  EXPECT_FALSE(try_charge(t_state, kMiB, false, false));
  EXPECT_EQ(allowance(), 0) << "a refusal leaves no allowance";
  EXPECT_TRUE(try_charge(t_state, 480 * kKiB, false, false));
  EXPECT_EQ(allowance(), 32 * kKiB) << "the rest of the room, less than a batch";
  EXPECT_TRUE(try_charge(t_state, 512 * kKiB, false, false)) << "exactly what is left";
  EXPECT_EQ(allowance(), 0);
  allocate(512 * kKiB);
  EXPECT_EQ(charged(), limit());
  EXPECT_EQ(charged(), c0 + kMiB);
  EXPECT_FALSE(try_charge(t_state, 1, false, false));
  EXPECT_FALSE(charge_and_allocate(16 * kKiB));
  release(blocks_.back());
  EXPECT_TRUE(try_charge(t_state, 512 * kKiB, false, false)) << "a free makes room again";
}

// MEMALLOC may go `emergency` bytes past the limit; overdraw ignores the limit.
TEST_F(Budget, EmergencyAllowanceAndOverdraw) {
  const size_t c0 = limit_above_charged(256 * kKiB);
  ASSERT_TRUE(charge_and_allocate(256 * kKiB));
  EXPECT_EQ(allowance(), 0);
  EXPECT_FALSE(try_charge(t_state, 64 * kKiB, false, false));
  EXPECT_FALSE(try_charge(t_state, 64 * kKiB, true, false)) << "no emergency allowance yet";
  set_emergency(128 * kKiB);
  EXPECT_FALSE(try_charge(t_state, 64 * kKiB, false, false)) << "only for MEMALLOC";
  ASSERT_TRUE(try_charge(t_state, 64 * kKiB, true, false));
  allocate(64 * kKiB);
  EXPECT_EQ(charged(), c0 + 320 * kKiB) << "64 KiB into the emergency allowance";
  EXPECT_FALSE(try_charge(t_state, 128 * kKiB, true, false)) << "past the emergency allowance";
  EXPECT_TRUE(try_charge(t_state, 64 * kKiB, true, false)) << "the last of it";
  EXPECT_TRUE(try_charge(t_state, 4 * kMiB, false, true)) << "overdraw";
  EXPECT_TRUE(charge_outside(4 * kMiB, false, true)) << "overdraw";
  EXPECT_EQ(charged(), c0 + 320 * kKiB + 4 * kMiB);
  uncharge_outside(4 * kMiB);
  EXPECT_EQ(charged(), c0 + 320 * kKiB);
}

// Bytes outside jemalloc (regions) are charged whole or not at all, and given back exactly.
TEST_F(Budget, ChargeOutsideIsExactAndAllOrNothing) {
  const size_t c0 = limit_above_charged(kMiB);
  EXPECT_TRUE(charge_outside(768 * kKiB, false, false));
  EXPECT_EQ(charged(), c0 + 768 * kKiB);
  EXPECT_FALSE(charge_outside(512 * kKiB, false, false));
  EXPECT_EQ(charged(), c0 + 768 * kKiB) << "nothing of a refused charge";
  EXPECT_TRUE(charge_outside(256 * kKiB, false, false)) << "exactly to the limit";
  EXPECT_EQ(charged(), limit());
  EXPECT_FALSE(charge_outside(1, false, false));
  EXPECT_FALSE(try_charge(t_state, 16 * kKiB, false, false)) << "the same budget";
  set_emergency(4 * kKiB);
  EXPECT_FALSE(charge_outside(4 * kKiB, false, false));
  EXPECT_TRUE(charge_outside(4 * kKiB, true, false));
  EXPECT_FALSE(charge_outside(1, true, false));
  uncharge_outside(kMiB + 4 * kKiB);
  EXPECT_EQ(charged(), c0);
  // With no limit nothing is charged: charged() is jemalloc's count alone.
  set_limit(0);
  const size_t live = charged();
  EXPECT_TRUE(charge_outside(size_t{1} << 40, false, false));
  EXPECT_EQ(charged(), live);
  uncharge_outside(size_t{1} << 40);
  EXPECT_EQ(charged(), live);
}

// A reserve is charged when made, whole or not at all, and its unused bytes come back.
TEST_F(Budget, ReservesAreChargedUntilGivenBack) {
  const size_t c0 = limit_above_charged(kMiB);
  ASSERT_TRUE(charge_reserve(t_state, 768 * kKiB, false, false));
  EXPECT_EQ(charged(), c0 + 768 * kKiB);
  EXPECT_EQ(reserves_total(), 768 * kKiB);
  EXPECT_FALSE(charge_reserve(t_state, 512 * kKiB, false, false));
  EXPECT_EQ(reserves_total(), 768 * kKiB);
  EXPECT_FALSE(try_charge(t_state, 512 * kKiB, false, false)) << "the reserve holds the room";
  EXPECT_EQ(uncharge_reserve(t_state), 768 * kKiB);
  EXPECT_EQ(reserves_total(), 0u);
  EXPECT_EQ(charged(), c0);
  EXPECT_EQ(uncharge_reserve(t_state), 0u);
  EXPECT_TRUE(try_charge(t_state, 512 * kKiB, false, false));
}

// arena_limit caps the arena's share (everything charged but the bytes outside jemalloc:
// regions) for every charge, as the limit caps the whole: refills get what the arena has
// left, reserves must fit in it, and regions still fit under the limit.
TEST_F(Budget, ArenaLimitCapsTheArenaShare) {
  const size_t c0 = limit_above_charged(64 * kMiB);
  EXPECT_EQ(arena_share(), c0);
  set_arena_limit(c0 + kMiB);
  ASSERT_TRUE(charge_outside(8 * kMiB, false, false));
  EXPECT_EQ(arena_share(), c0) << "regions are not the arena's";
  EXPECT_FALSE(try_charge(t_state, kMiB + 1, false, false));
  EXPECT_TRUE(try_charge(t_state, kMiB, false, false)) << "exactly what the arena has left";
  EXPECT_EQ(allowance(), 0);
  allocate(kMiB);
  EXPECT_EQ(arena_share(), arena_limit());
  EXPECT_FALSE(try_charge(t_state, 16 * kKiB, false, false));
  EXPECT_FALSE(charge_reserve(t_state, 16 * kKiB, false, false));
  EXPECT_TRUE(charge_outside(4 * kMiB, false, false)) << "the limit has room for regions";
  EXPECT_EQ(charged(), c0 + kMiB + 12 * kMiB);
  release(blocks_.back());
  EXPECT_TRUE(try_charge(t_state, 512 * kKiB, false, false)) << "a free makes room again";
  uncharge_outside(12 * kMiB);
}

// The limit is near when less room is left than every known thread may allocate
// unchecked (kUncheckedPerThread each): exactly then, every allocation is checked.
TEST_F(Budget, NearExactlyWhenTheRoomIsLessThanEachThreadMayAllocateUnchecked) {
  const auto counted = stats::get(stats::g_counters.limit_near);
  limit_above_charged(kMiB);
  EXPECT_FALSE(near());
  ASSERT_TRUE(charge_outside(kMiB - kUncheckedPerThread, false, false));
  EXPECT_FALSE(near()) << "room for this thread's unchecked allocations, exactly";
  ASSERT_TRUE(charge_outside(1, false, false));
  EXPECT_TRUE(near());
  EXPECT_EQ(gate::g_gate.direct_below.load(), 0u) << "every allocation is checked";
  EXPECT_EQ(stats::get(stats::g_counters.limit_near), counted + 1);
  uncharge_outside(1);
  EXPECT_FALSE(near());
  EXPECT_EQ(gate::g_gate.direct_below.load(), gate::kLimitDirectMax + 1);

  // A second known thread needs its own kUncheckedPerThread of room.
  uncharge_outside(kMiB - kUncheckedPerThread);
  ASSERT_TRUE(charge_outside(kMiB - 2 * kUncheckedPerThread + 1, false, false));
  EXPECT_FALSE(near());
  std::atomic<int> stage{0};
  std::thread other([&] {
    join(t_state);
    stage = 1;
    while (stage.load() != 2) std::this_thread::yield();
  });
  while (stage.load() != 1) std::this_thread::yield();
  EXPECT_TRUE(near()) << "two threads, 1 byte short of their unchecked room";
  stage = 2;
  other.join();
  EXPECT_FALSE(near()) << "the thread left";
  uncharge_outside(kMiB - 2 * kUncheckedPerThread + 1);
}

// Allocations that never ask the budget (the entry points' direct small ones) still bring
// the limit near in time: jemalloc calls the budget every kCheckInterval bytes, and the
// limit is near as soon as an exact sum shows less than kUncheckedPerThread left, never
// before and never past the limit.
TEST_F(Budget, DirectAllocationsBringTheLimitNearInTime) {
  const size_t c0 = limit_above_charged(kMiB);
  const size_t block = 16 * kKiB;  // below gate::kLimitDirectMax
  size_t total = 0;
  while (!near() && total < 2 * kMiB) {
    allocate(block);
    total += block;
  }
  ASSERT_TRUE(near()) << "never came near";
  EXPECT_GT(total, kMiB - kUncheckedPerThread) << "near before the room was used up";
  EXPECT_LE(total, kMiB - kUncheckedPerThread + kCheckInterval + block)
      << "a callback came later than every kCheckInterval bytes";
  EXPECT_EQ(charged(), c0 + total);
  // Frees call the budget too, and while it is near each callback sums exactly.
  while (!blocks_.empty()) release(blocks_.back());
  EXPECT_FALSE(near()) << "the frees took it far again";
}

// The same when the limit is engaged again after the thread freed much while none was:
// its checks measure growth from the new baseline, not from its last check under the old
// limit (which would hide the first kCheckInterval it allocates now).
TEST_F(Budget, ALimitSetAgainMeasuresGrowthFromItsBaseline) {
  limit_above_charged(64 * kMiB);
  std::vector<void *> earlier;
  for (int i = 0; i < 32; ++i) earlier.push_back(allocate(64 * kKiB));
  set_limit(0);
  for (void *p : earlier) release(p);
  const size_t c0 = limit_above_charged(kMiB);
  const size_t block = 16 * kKiB;
  size_t total = 0;
  while (!near() && total < 2 * kMiB) {
    allocate(block);
    total += block;
  }
  ASSERT_TRUE(near()) << "never came near";
  EXPECT_LE(total, kMiB - kUncheckedPerThread + kCheckInterval + block)
      << "the first check after the limit came back measured from the old baseline";
  EXPECT_EQ(charged(), c0 + total);
}

// charged() stays exact as threads come and go: what an exiting thread leaves allocated
// stays charged, what a thread frees of another's comes off, and an exiting thread's
// allowance goes back.
TEST_F(Budget, ChargedIsExactWithThreadsThatExit) {
  const size_t c0 = limit_above_charged(64 * kMiB);
  void *left_behind = nullptr;
  std::thread([&] {
    join(t_state);
    left_behind = je_malloc(kMiB);
  }).join();
  EXPECT_EQ(charged(), c0 + kMiB) << "still live after its thread exited";
  je_free(left_behind);
  EXPECT_EQ(charged(), c0) << "freed on another thread";

  void *given = allocate(2 * kMiB);
  EXPECT_EQ(charged(), c0 + 2 * kMiB);
  blocks_.pop_back();
  std::thread([&] {
    join(t_state);
    je_free(given);
  }).join();
  EXPECT_EQ(charged(), c0) << "a thread that only freed";

  set_limit(c0 + kMiB);
  std::thread([&] {
    join(t_state);
    EXPECT_TRUE(try_charge(t_state, 960 * kKiB, false, false));
    EXPECT_EQ(t_state.budget.left, 64 * kKiB) << "the rest of the room";
  }).join();
  EXPECT_EQ(charged(), c0);
  EXPECT_TRUE(try_charge(t_state, kMiB, false, false)) << "its allowance came back at exit";
}

}  // namespace
}  // namespace budget
}  // namespace allocscope
