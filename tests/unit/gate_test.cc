// gate_test.cc: the entry gate (gate.h): the words the entry points read for every
// combination of engaged bits, change() keeping those words in step with the bits, the
// bits derived from what modules publish, and each predicate the entry points test.
#include "gate.h"

#include <stdint.h>

#include <string>
#include <set>

#include <gtest/gtest.h>

namespace allocscope {
namespace gate {

// The preload's checked and engaged halves (gate.h's weak functions), defined here so
// that this test sees the gate as the preload does. Only their addresses matter: the test
// compares the call words with them and never calls through the words.
void *malloc_checked(size_t) noexcept {
  ADD_FAILURE() << "called";
  return nullptr;
}
void *new_checked(size_t) {
  ADD_FAILURE() << "called";
  return nullptr;
}
void free_engaged(void *) noexcept { ADD_FAILURE() << "called"; }

namespace {

constexpr uint32_t kAllBits = (1u << kBitCount) - 1;
constexpr size_t kAnySize = SIZE_MAX - 1;  // SIZE_MAX itself is never direct

// Every test starts and ends with nothing published and nothing engaged: the gate is
// process-wide state.
class Gate : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(bits(), 0u) << "a previous test left bits engaged"; }
  void TearDown() override {
    publish_max_size(SIZE_MAX);
    publish_default_policy(0);
    publish_rule_flags(0);
    publish_reclaimers(0);
    publish_kv_to_region(false);
    publish_atomic_reserve(false);
    publish_new_handler(false);
    change(0, kAllBits);
  }
  // Sets exactly `b`.
  static void engage_exactly(uint32_t b) { change(b, kAllBits & ~b); }
  // Whether the modules can engage `b` together: kv_to_region is derived only with kv,
  // and the limit is near only while one is set.
  static bool reachable(uint32_t b) {
    return (!(b & kKvToRegion) || (b & kKv)) && (!(b & kLimitNear) || (b & kLimit));
  }
};

// The bound below which allocations are direct, for every set of bits: every size while no
// allocation bit is engaged, the far limit's small sizes while only the limit is, none (not
// even 0 bytes) otherwise; plain new also none while a new_handler is installed. Bits only
// frees and reallocs care about change nothing here. The checked bound is the same with
// failure handling not counted, and malloc and plain new use it, calling the checked
// halves while failure handling is engaged.
TEST_F(Gate, DirectBoundForEveryCombinationOfBits) {
  ASSERT_TRUE(entry_calls_linked());
  for (uint32_t b = 0; b <= kAllBits; ++b) {
    const auto bound = [](uint32_t alloc) {
      return alloc == 0 ? SIZE_MAX : alloc == kLimit ? kLimitDirectMax + 1 : 0;
    };
    const size_t checked = bound(b & kAllocBits & ~kOnFailure);
    ASSERT_EQ(direct_below_for(b), bound(b & kAllocBits)) << "bits " << b;
    ASSERT_EQ(checked_below_for(b), checked) << "bits " << b;
    ASSERT_EQ(new_below_for(b), (b & kNewHandler) ? 0 : checked) << "bits " << b;
    const bool failures = b & kOnFailure;
    ASSERT_EQ(malloc_call_for(b), failures ? malloc_checked : je_malloc_noexcept) << "bits " << b;
    ASSERT_EQ(new_call_for(b), failures ? new_checked : je_operator_new) << "bits " << b;
    ASSERT_EQ(free_call_for(b), (b & kFreeBits) ? free_engaged : je_free_noexcept) << "bits " << b;
  }
  // Spelled out for the bits that matter most.
  EXPECT_EQ(direct_below_for(0), SIZE_MAX);
  EXPECT_EQ(direct_below_for(kLimit), kLimitDirectMax + 1);
  EXPECT_EQ(direct_below_for(kLimit | kLimitNear), 0u) << "a near limit checks every allocation";
  EXPECT_EQ(direct_below_for(kLimit | kWaiters | kRegions | kKv | kNewHandler),
            kLimitDirectMax + 1);
  EXPECT_EQ(direct_below_for(kLimit | kOnFailure), 0u);
  for (uint32_t bit : {kOnFailure, kKvToRegion, kFaults, kReserveScope, kAtomicReserve, kRefill,
                       kLimitNear, kExiting, kForeign})
    EXPECT_EQ(direct_below_for(bit), 0u) << bit_name(bit);
  for (uint32_t bit : {kWaiters, kKv, kRegions, kNewHandler})
    EXPECT_EQ(direct_below_for(bit), SIZE_MAX) << bit_name(bit);
  EXPECT_EQ(new_below_for(kNewHandler), 0u);
  EXPECT_EQ(new_below_for(kLimit), kLimitDirectMax + 1);
  EXPECT_EQ(checked_below_for(kOnFailure), SIZE_MAX) << "failure handling: every size checked";
  EXPECT_EQ(checked_below_for(kLimit | kOnFailure), kLimitDirectMax + 1);
  EXPECT_EQ(checked_below_for(kOnFailure | kFaults), 0u) << "faults need the engine's count";
}

// After any change(), the words the entry points read are those of the bits now engaged,
// whatever was engaged before.
TEST_F(Gate, ChangeKeepsTheWordsInStepWithTheBits) {
  auto in_step = [] {
    const uint32_t b = g_gate.engaged.load();
    return g_gate.direct_below.load() == direct_below_for(b) &&
           g_gate.checked_below.load() == checked_below_for(b) &&
           g_gate.new_below.load() == new_below_for(b) &&
           g_gate.malloc_call.load() == malloc_call_for(b) &&
           g_gate.new_call.load() == new_call_for(b) && g_gate.free_call.load() == free_call_for(b);
  };
  ASSERT_TRUE(in_step());
  uint32_t previous = 0;
  for (uint32_t b = 0; b <= kAllBits; ++b) {
    engage_exactly(b);
    ASSERT_EQ(bits(), b);
    ASSERT_TRUE(in_step()) << "from " << previous << " to " << b;
    previous = b;
  }
  // Setting and clearing single bits on top of others.
  engage_exactly(kLimit | kRegions);
  change(kLimitNear, 0);
  EXPECT_EQ(bits(), kLimit | kRegions | kLimitNear);
  EXPECT_TRUE(in_step());
  change(0, kLimitNear);
  EXPECT_EQ(bits(), kLimit | kRegions);
  EXPECT_EQ(g_gate.direct_below.load(), kLimitDirectMax + 1);
  change(kNewHandler, kRegions);
  EXPECT_EQ(bits(), kLimit | kNewHandler);
  EXPECT_TRUE(in_step());
  change(kLimit, 0);  // nothing new: the words stay
  EXPECT_TRUE(in_step());
  change(0, kAllBits);
  EXPECT_EQ(bits(), 0u);
  EXPECT_EQ(g_gate.direct_below.load(), SIZE_MAX);
  EXPECT_EQ(g_gate.new_below.load(), SIZE_MAX);
  EXPECT_EQ(g_gate.malloc_call.load(), je_malloc_noexcept);
  EXPECT_EQ(g_gate.free_call.load(), je_free_noexcept);
}

// The default policy: NOFAIL and RETRY_MAYFAIL send failures to the engine, KV engages
// kv, and kv_direct only matters with KV somewhere. NORETRY and NOWAIT fail as jemalloc
// does: nothing to engage.
TEST_F(Gate, TheDefaultPolicyEngagesWhatItNeeds) {
  publish_default_policy(ALLOCSCOPE_NOFAIL);
  EXPECT_EQ(bits(), kOnFailure);
  publish_default_policy(ALLOCSCOPE_RETRY_MAYFAIL | ALLOCSCOPE_NOWARN);
  EXPECT_EQ(bits(), kOnFailure);
  publish_default_policy(ALLOCSCOPE_NORETRY | ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  EXPECT_EQ(bits(), 0u);
  publish_kv_to_region(true);
  EXPECT_EQ(bits(), 0u) << "kv_direct without KV anywhere sends nothing to a region";
  publish_default_policy(ALLOCSCOPE_KV);
  EXPECT_EQ(bits(), kKv | kKvToRegion);
  EXPECT_EQ(direct_below_for(bits()), 0u) << "large allocations go to regions";
  publish_kv_to_region(false);
  EXPECT_EQ(bits(), kKv);
  EXPECT_EQ(g_gate.direct_below.load(), SIZE_MAX) << "KV alone concerns reallocs only";
  publish_default_policy(0);
  EXPECT_EQ(bits(), 0u);
}

// A rule needs the engine on failure whatever its flags (it is looked up only then).
TEST_F(Gate, RulesReclaimersAndTheNewHandler) {
  publish_rule_flags(ALLOCSCOPE_NOWARN);
  EXPECT_EQ(bits(), kOnFailure);
  publish_rule_flags(ALLOCSCOPE_KV);
  EXPECT_EQ(bits(), kOnFailure | kKv);
  publish_rule_flags(0);
  EXPECT_EQ(bits(), 0u);
  publish_reclaimers(2);
  EXPECT_EQ(bits(), kOnFailure);
  publish_reclaimers(0);
  EXPECT_EQ(bits(), 0u);
  publish_new_handler(true);
  EXPECT_EQ(bits(), kNewHandler);
  EXPECT_EQ(g_gate.new_below.load(), 0u);
  EXPECT_EQ(g_gate.direct_below.load(), SIZE_MAX) << "only plain operator new cares";
  publish_new_handler(false);
  EXPECT_EQ(bits(), 0u);
  EXPECT_EQ(g_gate.new_below.load(), SIZE_MAX);
}

// A bit several sources derive stays while any of them remains.
TEST_F(Gate, ADerivedBitStaysWhileAnySourceRemains) {
  publish_default_policy(ALLOCSCOPE_NOFAIL);
  publish_reclaimers(1);
  count_scopes({1, 0, 0, 0});
  publish_default_policy(0);
  EXPECT_EQ(bits(), kOnFailure) << "reclaimers and a scope remain";
  publish_reclaimers(0);
  EXPECT_EQ(bits(), kOnFailure) << "a scope remains";
  count_scopes({-1, 0, 0, 0});
  EXPECT_EQ(bits(), 0u);
  // Bits that are not derived are left alone by every publish.
  change(kLimit | kRegions, 0);
  publish_default_policy(ALLOCSCOPE_KV);
  publish_default_policy(0);
  EXPECT_EQ(bits(), kLimit | kRegions);
}

// Scope counts: a thread's NOFAIL/RETRY_MAYFAIL, KV and RESERVE scopes engage their bits
// for every thread until the last such scope ends; NOWAIT scopes only matter to the
// atomic reserve.
TEST_F(Gate, ScopeCounts) {
  count_scopes({1, 0, 0, 0});
  EXPECT_EQ(bits(), kOnFailure);
  count_scopes({1, 0, 0, 0});
  count_scopes({-1, 0, 0, 0});
  EXPECT_EQ(bits(), kOnFailure) << "one of two scopes left";
  count_scopes({-1, 1, 0, 0});
  EXPECT_EQ(bits(), kKv);
  count_scopes({0, -1, 1, 0});
  EXPECT_EQ(bits(), kReserveScope);
  EXPECT_EQ(g_gate.direct_below.load(), 0u);
  count_scopes({0, 0, -1, 1});
  EXPECT_EQ(bits(), 0u) << "NOWAIT without the atomic reserve engages nothing";
  count_scopes({0, 0, 0, -1});
  EXPECT_EQ(bits(), 0u);
}

// The atomic reserve serves NOWAIT allocations: it engages once NOWAIT can occur, from a
// scope (that thread) or from the default policy or a rule (any thread:
// nowait_everywhere).
TEST_F(Gate, TheAtomicReserveEngagesWhereNowaitCanOccur) {
  publish_atomic_reserve(true);
  EXPECT_EQ(bits(), 0u) << "no NOWAIT anywhere";
  EXPECT_FALSE(nowait_everywhere());
  count_scopes({0, 0, 0, 1});
  EXPECT_EQ(bits(), kAtomicReserve);
  EXPECT_FALSE(nowait_everywhere()) << "only that thread's allocations";
  count_scopes({0, 0, 0, -1});
  EXPECT_EQ(bits(), 0u);
  publish_default_policy(ALLOCSCOPE_NOWAIT);
  EXPECT_EQ(bits(), kAtomicReserve);
  EXPECT_TRUE(nowait_everywhere());
  publish_default_policy(0);
  publish_rule_flags(ALLOCSCOPE_NOWAIT);
  EXPECT_EQ(bits(), kAtomicReserve | kOnFailure);
  EXPECT_TRUE(nowait_everywhere());
  publish_atomic_reserve(false);
  EXPECT_EQ(bits(), kOnFailure);
  EXPECT_FALSE(nowait_everywhere());
}

// The predicates, each against the bits that must and must not turn it off.
TEST_F(Gate, AllocationPredicates) {
  EXPECT_TRUE(is_direct(kAnySize));
  EXPECT_TRUE(new_is_direct(kAnySize));
  engage_exactly(kLimit);
  EXPECT_TRUE(is_direct(kLimitDirectMax));
  EXPECT_FALSE(is_direct(kLimitDirectMax + 1));
  EXPECT_TRUE(new_is_direct(kLimitDirectMax));
  EXPECT_FALSE(new_is_direct(kLimitDirectMax + 1));
  engage_exactly(kLimit | kNewHandler);
  EXPECT_TRUE(is_direct(kLimitDirectMax));
  EXPECT_FALSE(new_is_direct(1));
  engage_exactly(kOnFailure);
  EXPECT_FALSE(is_direct(1));
  EXPECT_TRUE(is_checked(kAnySize)) << "failure handling alone: jemalloc first";
  EXPECT_TRUE(malloc_is_direct(kAnySize));
  EXPECT_EQ(malloc_call(), malloc_checked);
  EXPECT_TRUE(new_is_direct(kAnySize));
  EXPECT_EQ(new_call(), new_checked);
  EXPECT_TRUE(failure_handled());
  engage_exactly(kOnFailure | kLimit);
  EXPECT_TRUE(malloc_is_direct(kLimitDirectMax));
  EXPECT_FALSE(malloc_is_direct(kLimitDirectMax + 1)) << "a far limit's window, checked";
  engage_exactly(kOnFailure | kReserveScope);
  EXPECT_FALSE(malloc_is_direct(1));
  EXPECT_FALSE(is_checked(0));
  EXPECT_FALSE(limit_is_set());
  engage_exactly(kLimit);
  EXPECT_TRUE(limit_is_set());
}

// max_size: with nothing engaged, a request above it takes the engine (which fails it);
// every size up to it stays direct.
TEST_F(Gate, MaxSizeBoundsTheDirectSizes) {
  publish_max_size(size_t{1} << 30);
  EXPECT_EQ(direct_below_for(0), (size_t{1} << 30) + 1) << "an exclusive bound";
  EXPECT_TRUE(is_direct(size_t{1} << 30));
  EXPECT_FALSE(is_direct((size_t{1} << 30) + 1));
  EXPECT_FALSE(new_is_direct((size_t{1} << 30) + 1));
  EXPECT_FALSE(realloc_is_direct((size_t{1} << 30) + 1));
  engage_exactly(kOnFailure);
  EXPECT_FALSE(is_direct(1));
  engage_exactly(0);
  EXPECT_TRUE(is_direct(size_t{1} << 30)) << "the cap is back with the bits";
  publish_max_size(SIZE_MAX);
  EXPECT_TRUE(is_direct(SIZE_MAX - 1));
  EXPECT_FALSE(is_direct(SIZE_MAX)) << "the one size no bound lets through: jemalloc refuses it";
}

// While only a far limit is engaged, small allocations are direct up to kLimitDirectMax,
// but never past max_size (which accepts any size from 1): with max_size:1K,limit:1G,
// malloc(2048) must reach the engine and fail.
TEST_F(Gate, AFarLimitKeepsTheMaxSizeCap) {
  publish_max_size(1024);
  engage_exactly(kLimit);
  EXPECT_FALSE(is_direct(2048));
  EXPECT_FALSE(new_is_direct(2048));
}

// "None direct" includes 0 bytes: malloc(0), calloc(0, n) and operator new(0) reach the
// engine too while it is engaged (fault injection and allocscope_fail_nth count them; a
// NOWAIT malloc(0) under nowait_reserve comes from the atomic reserve).
TEST_F(Gate, WhenEngagedNoSizeIsDirectNotEvenZero) {
  engage_exactly(kOnFailure);
  EXPECT_FALSE(is_direct(0));
  engage_exactly(kFaults);
  EXPECT_FALSE(is_direct(0));
  engage_exactly(kNewHandler);
  EXPECT_FALSE(new_is_direct(0));
}

// A free is jemalloc's unless a waiter must be woken, a region told apart, an exiting
// thread's free charged, the pointer may be another allocator's, or a sweep run tracks
// the blocks its failed path leaves (leak_track.h).
TEST_F(Gate, FreePredicate) {
  const uint32_t engaging = kWaiters | kRegions | kExiting | kForeign | kLeakTrack;
  for (uint32_t b = 0; b <= kAllBits; ++b) {
    engage_exactly(b);
    ASSERT_EQ(free_is_direct(), (b & engaging) == 0) << "bits " << b;
    ASSERT_EQ(free_call(), (b & engaging) == 0 ? je_free_noexcept : free_engaged) << "bits " << b;
  }
  engage_exactly(kAllBits & ~engaging);
  EXPECT_TRUE(free_is_direct()) << "a limit, scopes, faults: a free is still jemalloc's";
}

// realloc is direct with nothing engaged but a limit (its size test covers that), failure
// handling (its NULL test does) or a new_handler; when engaged, it tries jemalloc first
// only while what is engaged is about failures (the engine then runs only when jemalloc
// fails).
TEST_F(Gate, ReallocPredicates) {
  for (uint32_t b = 0; b <= kAllBits; ++b) {
    if (!reachable(b)) continue;
    engage_exactly(b);
    const bool only_limit_or_handler = (b & ~(kLimit | kOnFailure | kNewHandler)) == 0;
    ASSERT_EQ(realloc_is_direct(16), only_limit_or_handler) << "bits " << b;
    ASSERT_EQ(realloc_is_direct(kLimitDirectMax + 1), only_limit_or_handler && !(b & kLimit))
        << "bits " << b;
    const bool failures_only = (b & ~(kOnFailure | kWaiters | kLimitNear | kNewHandler)) == 0;
    ASSERT_EQ(realloc_tries_jemalloc_first(), failures_only) << "bits " << b;
  }
  engage_exactly(kKv);
  EXPECT_FALSE(realloc_is_direct(16)) << "a KV realloc may move to a region";
  EXPECT_FALSE(realloc_tries_jemalloc_first());
  engage_exactly(kOnFailure);
  EXPECT_TRUE(realloc_is_direct(16)) << "failure handling: jemalloc, then the NULL test";
  engage_exactly(kOnFailure | kWaiters);
  EXPECT_FALSE(realloc_is_direct(16));
  EXPECT_TRUE(realloc_tries_jemalloc_first());
}

TEST_F(Gate, ResizeInPlacePredicate) {
  for (uint32_t b = 0; b <= kAllBits; ++b) {
    engage_exactly(b);
    ASSERT_EQ(resize_in_place_is_direct(), (b & (kLimit | kRegions | kForeign)) == 0)
        << "bits " << b;
  }
}

TEST_F(Gate, AlignedBound) {
  EXPECT_EQ(aligned_bound(100, 64), 164u);
  EXPECT_EQ(aligned_bound(SIZE_MAX - 64, 64), SIZE_MAX);
  EXPECT_EQ(aligned_bound(SIZE_MAX - 63, 64), SIZE_MAX) << "overflow";
  EXPECT_EQ(aligned_bound(SIZE_MAX, 4096), SIZE_MAX);
}

// Every bit has its own name (the stats' "engaged" words); anything else is "?".
TEST_F(Gate, EveryBitHasOneName) {
  std::set<std::string> names;
  for (uint32_t i = 0; i < kBitCount; ++i) {
    const std::string name = bit_name(1u << i);
    EXPECT_NE(name, "?") << "bit " << i;
    EXPECT_TRUE(names.insert(name).second) << name << " twice";
  }
  EXPECT_STREQ(bit_name(kLimit), "limit");
  EXPECT_STREQ(bit_name(kOnFailure), "on_failure");
  EXPECT_STREQ(bit_name(kReserveScope), "reserve_scope");
  EXPECT_STREQ(bit_name(kLimitNear), "limit_near");
  EXPECT_STREQ(bit_name(kNewHandler), "new_handler");
  EXPECT_STREQ(bit_name(kExiting), "exiting");
  EXPECT_STREQ(bit_name(kForeign), "foreign");
  EXPECT_STREQ(bit_name(kLeakTrack), "leak_track");
  EXPECT_STREQ(bit_name(0), "?");
  EXPECT_STREQ(bit_name(kLimit | kKv), "?");
  EXPECT_STREQ(bit_name(1u << kBitCount), "?");
}

}  // namespace
}  // namespace gate
}  // namespace allocscope
