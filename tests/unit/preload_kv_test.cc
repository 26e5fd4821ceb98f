// preload_kv_test.cc: kvmalloc-style fallback under the preload. A KV allocation at or above
// kv_threshold first tries jemalloc lightly and falls back to an mmap region only when
// that fails (here: when arena_limit says the arena's share is used up); kv_direct sends
// it straight to a region. Checked through the public API: allocscope_is_region(), the
// stats JSON, page faults, RSS, and signals in forked children.
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <new>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#define JEMALLOC_NO_DEMANGLE
#include <jemalloc/jemalloc.h>

#include "allocscope.h"
#include "allocscope.hpp"
#include "preload_support.h"

namespace {

using preload_support::kMiB;
using preload_support::stat;
using test_support::in_child;
using test_support::kKilledBy;
using test_support::minor_faults;
using test_support::rss_bytes;

class Kv : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_PRELOADED();
    ASSERT_EQ(allocscope_config("kv_threshold:64K,kv_direct:0,arena_limit:0,limit:0"), 0);
  }
  void TearDown() override { allocscope_config("kv_direct:0,arena_limit:0,limit:0"); }
};

TEST_F(Kv, NoFallbackWhileTheArenaAttemptSucceeds) {
  const auto fallbacks = stat("fallbacks", "kv");
  void *p = allocscope_kvmalloc(4 * kMiB, 0);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(allocscope_is_region(p), 0);
  EXPECT_EQ(stat("fallbacks", "kv"), fallbacks);
  free(p);
}

TEST_F(Kv, FallsBackExactlyWhenTheArenaLimitIsReached) {
  // The arena may hold what it holds now plus 2 MiB.
  ASSERT_EQ(allocscope_config(("arena_limit:" + std::to_string(allocscope_charged() + 2 * kMiB))
                                  .c_str()),
            0);
  const auto fallbacks = stat("fallbacks", "kv");
  void *in_arena = allocscope_kvmalloc(kMiB, 0);
  ASSERT_NE(in_arena, nullptr);
  EXPECT_EQ(allocscope_is_region(in_arena), 0) << "fits the arena: no fallback";
  void *region = allocscope_kvmalloc(4 * kMiB, 0);
  ASSERT_NE(region, nullptr);
  EXPECT_EQ(allocscope_is_region(region), 1) << "past arena_limit: a region";
  EXPECT_EQ(stat("fallbacks", "kv"), fallbacks + 1);
  EXPECT_GE(malloc_usable_size(region), 4 * kMiB);
  memset(region, 7, 4 * kMiB);
  // Without KV the same allocation has no region to fall back to: arena_limit caps every
  // arena allocation, as the limit does (the kernel's contiguous allocator fails for
  // every caller, not only for kvmalloc's).
  errno = 0;
  EXPECT_EQ(allocscope_alloc(4 * kMiB, ALLOCSCOPE_NOWARN), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  free(region);
  free(in_arena);
}

TEST_F(Kv, AnInjectedArenaFailureFallsBackToARegion) {
  const auto fallbacks = stat("fallbacks", "kv");
  ASSERT_EQ(allocscope_config("fault.size_min:3M,fault.size_max:3M,fault.nth:1"), 0);
  void *p = allocscope_kvmalloc(3 * kMiB, 0);
  ASSERT_NE(p, nullptr) << "the injected failure hits the arena attempt, not the region";
  EXPECT_EQ(allocscope_is_region(p), 1);
  EXPECT_EQ(stat("fallbacks", "kv"), fallbacks + 1);
  free(p);
  ASSERT_EQ(allocscope_config("fault.nth:1"), 0);
  EXPECT_EQ(allocscope_alloc(3 * kMiB, ALLOCSCOPE_NOWARN), nullptr) << "without KV it just fails";
  allocscope_config("fault.reset:true");
}

TEST_F(Kv, BelowTheThresholdNeverARegion) {
  ASSERT_EQ(allocscope_config(("arena_limit:" + std::to_string(allocscope_charged())).c_str()),
            0);
  ASSERT_EQ(allocscope_config("kv_direct:4K"), 0);
  void *p = allocscope_kvmalloc(32 << 10, ALLOCSCOPE_NOWARN);
  if (p != nullptr) {
    EXPECT_EQ(allocscope_is_region(p), 0);
  }
  free(p);
  void *big = allocscope_kvmalloc(64 << 10, 0);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(allocscope_is_region(big), 1);
  free(big);
}

TEST_F(Kv, KvDirectAndAScopeSendPlainMallocToRegions) {
  ASSERT_EQ(allocscope_config("kv_direct:1M"), 0);
  const auto direct = stat("direct", "kv");
  void *small = nullptr, *big = nullptr;
  {
    allocscope::Scope kv(ALLOCSCOPE_KV);
    small = malloc(256 << 10);
    big = malloc(2 * kMiB);
  }
  EXPECT_EQ(allocscope_is_region(small), 0);
  EXPECT_EQ(allocscope_is_region(big), 1);
  EXPECT_EQ(stat("direct", "kv"), direct + 1);
  void *outside = malloc(2 * kMiB);
  EXPECT_EQ(allocscope_is_region(outside), 0) << "outside the KV scope: the arena";
  free(outside);
  free(big);
  free(small);
}

TEST_F(Kv, AWriteJustPastARegionKillsTheWriter) {
  ASSERT_EQ(allocscope_config("kv_direct:64K"), 0);
  auto *p = static_cast<char *>(allocscope_kvmalloc(100 << 10, 0));
  ASSERT_EQ(allocscope_is_region(p), 1);
  const size_t usable = malloc_usable_size(p);
  p[usable - 1] = 1;  // the last byte is fine
  EXPECT_EQ(in_child([&] { static_cast<volatile char *>(p)[usable] = 1; }), kKilledBy + SIGSEGV);
  free(p);
}

TEST_F(Kv, GrowingARegionByDoublingNeitherCopiesNorLoses) {
  ASSERT_EQ(allocscope_config("kv_direct:1M"), 0);
  allocscope::Scope kv(ALLOCSCOPE_KV);
  size_t size = kMiB;
  auto *p = static_cast<unsigned char *>(malloc(size));
  ASSERT_EQ(allocscope_is_region(p), 1);
  for (size_t i = 0; i < size; i += 4096) p[i] = static_cast<unsigned char>(i >> 12);
  const auto moves = stat("remap_moves", "kv"), in_place = stat("grown_in_place", "kv");
  while (size < 1024 * kMiB) {
    const long before = minor_faults();
    p = static_cast<unsigned char *>(realloc(p, size * 2));
    const long faults = minor_faults() - before;
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(allocscope_is_region(p), 1);
    // A copy would touch every page of the new block; a remap touches none of them.
    EXPECT_LT(faults, 64) << "growing to " << size * 2 << " bytes";
    for (size_t i = 0; i < size; i += 4096)
      ASSERT_EQ(p[i], static_cast<unsigned char>(i >> 12)) << "page " << i / 4096;
    for (size_t i = size; i < size * 2; i += 4096) p[i] = static_cast<unsigned char>(i >> 12);
    size *= 2;
  }
  EXPECT_EQ(stat("remap_moves", "kv") + stat("grown_in_place", "kv"), moves + in_place + 10);
  free(p);
}

TEST_F(Kv, FreeingARegionLowersRss) {
  ASSERT_EQ(allocscope_config("kv_direct:1M"), 0);
  auto *p = static_cast<char *>(allocscope_kvmalloc(128 * kMiB, 0));
  ASSERT_EQ(allocscope_is_region(p), 1);
  memset(p, 1, 128 * kMiB);
  const size_t during = rss_bytes();
  free(p);
  EXPECT_GT(during, rss_bytes() + 120 * kMiB);
}

TEST_F(Kv, EveryFreeFamilyEntryPointTakesARegion) {
  ASSERT_EQ(allocscope_config("kv_direct:64K"), 0);
  auto region = [] {
    void *p = allocscope_kvmalloc(200 << 10, 0);
    EXPECT_EQ(allocscope_is_region(p), 1);
    return p;
  };
  const auto before = stat("regions", "kv");
  free(region());
  EXPECT_EQ(realloc(region(), 0), nullptr);
  ::operator delete(region());
  ::operator delete(region(), 200 << 10);
  ::operator delete[](region(), std::align_val_t{4096});
  ::operator delete(region(), 200 << 10, std::align_val_t{4096});
  dallocx(region(), 0);
  sdallocx(region(), 200 << 10, 0);
  void *p = region();
  EXPECT_GE(malloc_usable_size(p), size_t{200} << 10);
  EXPECT_EQ(sallocx(p, 0), malloc_usable_size(p));
  EXPECT_EQ(xallocx(p, 400 << 10, 0, 0), malloc_usable_size(p)) << "a region never grows via xallocx";
  p = reallocarray(p, 100, 4 << 10);
  ASSERT_NE(p, nullptr);
  free(p);
  EXPECT_EQ(stat("regions", "kv"), before);
}

TEST_F(Kv, ReallocMovesBetweenArenaAndRegionBothWays) {
  ASSERT_EQ(allocscope_config("kv_direct:1M"), 0);
  allocscope::Scope kv(ALLOCSCOPE_KV);
  auto *p = static_cast<char *>(malloc(100));
  strcpy(p, "travels");
  p = static_cast<char *>(realloc(p, 4 * kMiB));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(allocscope_is_region(p), 1);
  EXPECT_STREQ(p, "travels");
  p = static_cast<char *>(realloc(p, 1000));  // below kv_threshold: back to the arena
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(allocscope_is_region(p), 0);
  EXPECT_STREQ(p, "travels");
  free(p);
}

TEST_F(Kv, AlignmentsBeyondThePageAreHonoured) {
  ASSERT_EQ(allocscope_config("kv_direct:64K"), 0);
  allocscope::Scope kv(ALLOCSCOPE_KV);
  for (size_t align : {size_t{4096}, size_t{64} << 10, size_t{2} << 20}) {
    void *p = nullptr;
    ASSERT_EQ(posix_memalign(&p, align, 300 << 10), 0);
    EXPECT_EQ(allocscope_is_region(p), 1);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u) << align;
    free(p);
    p = aligned_alloc(align, 512 << 10);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u) << align;
    free(p);
  }
}

TEST_F(Kv, RegionsCountAgainstTheLimit) {
  ASSERT_EQ(allocscope_config("kv_direct:1M"), 0);
  ASSERT_EQ(allocscope_limit_set(allocscope_charged() + 16 * kMiB), 0);
  const size_t before = allocscope_charged();
  void *p = allocscope_kvmalloc(8 * kMiB, 0);
  ASSERT_EQ(allocscope_is_region(p), 1);
  EXPECT_GE(allocscope_charged(), before + 8 * kMiB);
  errno = 0;
  EXPECT_EQ(allocscope_kvmalloc(32 * kMiB, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  free(p);
  EXPECT_LT(allocscope_charged(), before + kMiB);
}

TEST_F(Kv, ThreadsAllocateGrowAndFreeRegionsConcurrently) {
  ASSERT_EQ(allocscope_config("kv_direct:64K"), 0);
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t, &bad] {
      allocscope::Scope kv(ALLOCSCOPE_KV);
      for (int i = 0; i < 100; ++i) {
        size_t size = (64 << 10) * (1 + (i + t) % 5);
        auto *p = static_cast<unsigned char *>(malloc(size));
        if (allocscope_is_region(p) != 1) ++bad;
        memset(p, t + 1, size);
        p = static_cast<unsigned char *>(realloc(p, size * 3));
        for (size_t k = 0; k < size; k += 997)
          if (p[k] != t + 1) ++bad;
        free(p);
      }
    });
  for (auto &th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
