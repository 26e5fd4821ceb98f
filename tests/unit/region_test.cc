// region_test.cc: mmap regions: alignment, the window test, usable sizes, guard pages,
// pages given back on release and shrink, growth that moves pages instead of copying
// them (counted in minor page faults), threads, reuse of address space in a small
// window, exhaustion, errno.
#include "region.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "test_support.h"

namespace allocscope {
namespace {

using test_support::in_child;
using test_support::minor_faults;
using test_support::rss_bytes;

const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));
constexpr size_t kMiB = size_t{1} << 20;

size_t round_to_pages(size_t n) { return (std::max<size_t>(n, 1) + kPage - 1) / kPage * kPage; }

char *allocate(size_t size, size_t align = 0, bool zero_unused = false) {
  return static_cast<char *>(region::allocate(size, align, zero_unused));
}

char *grow(char *p, size_t size) { return static_cast<char *>(region::grow(p, size)); }

// A word at the start of each page of [from, to): touches each page once.
uint64_t pattern(size_t page, uint64_t seed) { return (seed << 32) ^ page ^ 0x5a5a5a5a; }

void fill_pages(char *p, size_t from, size_t to, uint64_t seed = 1) {
  for (size_t off = from; off < to; off += kPage)
    *reinterpret_cast<uint64_t *>(p + off) = pattern(off / kPage, seed);
}

// The first page of [from, to) whose word is wrong, or `to`.
size_t first_bad_page(const char *p, size_t from, size_t to, uint64_t seed = 1) {
  for (size_t off = from; off < to; off += kPage)
    if (*reinterpret_cast<const uint64_t *>(p + off) != pattern(off / kPage, seed)) return off;
  return to;
}

// in_child() of a write that must hit a guard page or an unmapped one.
bool killed_by_segv(int status) { return status == test_support::kKilledBy + SIGSEGV; }

TEST(Region, AlignedForEveryAlignment) {
  // A one-page region first, so the free space no longer starts on a large boundary.
  char *offset = allocate(1);
  ASSERT_NE(offset, nullptr);
  for (size_t align : {size_t{0}, size_t{4} << 10, size_t{64} << 10, size_t{2} << 20}) {
    char *p = allocate(100000, align);
    ASSERT_NE(p, nullptr) << align;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % std::max(align, kPage), 0u) << align;
    EXPECT_EQ(region::usable_size(p), round_to_pages(100000));
    // Still aligned after moving.
    char *blocker = allocate(1);
    char *q = grow(p, 8 * kMiB);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(q) % std::max(align, kPage), 0u) << align;
    EXPECT_TRUE(region::release(q));
    EXPECT_TRUE(region::release(blocker));
  }
  EXPECT_TRUE(region::release(offset));
}

TEST(Region, ContainsEveryByteAndNothingOutsideTheWindow) {
  char *p = allocate(3 * kPage + 1);
  ASSERT_NE(p, nullptr);
  const size_t usable = region::usable_size(p);
  ASSERT_EQ(usable, 4 * kPage);
  for (size_t i = 0; i < usable; ++i) ASSERT_TRUE(region::contains(p + i)) << i;

  int on_stack = 0;
  void *on_heap = malloc(64);
  static int in_data;
  EXPECT_FALSE(region::contains(nullptr));
  EXPECT_FALSE(region::contains(&on_stack));
  EXPECT_FALSE(region::contains(on_heap));
  EXPECT_FALSE(region::contains(&in_data));
  EXPECT_FALSE(region::contains(reinterpret_cast<void *>(&region::allocate)));
  const uintptr_t base = region::g_window_base.load();
  const uintptr_t size = region::g_window_size.load();
  EXPECT_FALSE(region::contains(reinterpret_cast<void *>(base - 1)));
  EXPECT_TRUE(region::contains(reinterpret_cast<void *>(base + size - 1)));
  EXPECT_FALSE(region::contains(reinterpret_cast<void *>(base + size)));
  free(on_heap);
  EXPECT_TRUE(region::release(p));
}

TEST(Region, UsableSizeIsWholePagesAllWritable) {
  for (size_t size : {size_t{0}, size_t{1}, kPage - 1, kPage, kPage + 1, kMiB + 1}) {
    char *p = allocate(size);
    ASSERT_NE(p, nullptr) << size;
    const size_t usable = region::usable_size(p);
    EXPECT_EQ(usable, round_to_pages(size)) << size;
    EXPECT_EQ(std::count(p, p + usable, 0), static_cast<long>(usable)) << "fresh pages are zero";
    memset(p, 0xab, usable);
    EXPECT_EQ(std::count(p, p + usable, static_cast<char>(0xab)), static_cast<long>(usable));
    EXPECT_EQ(region::usable_size(p + kPage), 0u) << "not the start of a region";
    EXPECT_TRUE(region::release(p));
    EXPECT_EQ(region::usable_size(p), 0u) << "released";
  }
}

TEST(Region, WritePastTheEndHitsTheGuardPage) {
  char *p = allocate(10000);
  ASSERT_NE(p, nullptr);
  const size_t usable = region::usable_size(p);
  EXPECT_EQ(in_child([&] { p[usable - 1] = 1; }), 0) << "the last byte is writable";
  EXPECT_TRUE(killed_by_segv(in_child([&] { p[usable] = 1; })));

  // The guard follows the data when it grows, in place or moved, and when it shrinks.
  char *in_place = grow(p, 5 * kPage);
  ASSERT_EQ(in_place, p);
  EXPECT_TRUE(killed_by_segv(in_child([&] { p[5 * kPage] = 1; })));
  char *blocker = allocate(1);
  char *moved = grow(p, 50 * kPage);
  ASSERT_NE(moved, nullptr);
  ASSERT_NE(moved, p);
  EXPECT_EQ(in_child([&] { moved[50 * kPage - 1] = 1; }), 0);
  EXPECT_TRUE(killed_by_segv(in_child([&] { moved[50 * kPage] = 1; })));
  ASSERT_EQ(grow(moved, 2 * kPage), moved);
  EXPECT_TRUE(killed_by_segv(in_child([&] { moved[2 * kPage] = 1; })));
  EXPECT_TRUE(killed_by_segv(in_child([&] { p[0] = 1; }))) << "the old place is gone";
  EXPECT_TRUE(region::release(moved));
  EXPECT_TRUE(region::release(blocker));
}

TEST(Region, ReleaseReturnsThePages) {
  const size_t size = 64 * kMiB;
  char *p = allocate(size);
  ASSERT_NE(p, nullptr);
  const size_t before = rss_bytes();
  fill_pages(p, 0, size);
  const size_t touched = rss_bytes();
  EXPECT_GE(touched, before + size - 4 * kMiB);
  EXPECT_TRUE(region::release(p));
  EXPECT_LE(rss_bytes(), touched - (size - 4 * kMiB));
  EXPECT_TRUE(killed_by_segv(in_child([&] { p[0] = 1; })));
}

TEST(Region, GrowingByDoublingMovesPagesWithoutTouchingThem) {
  size_t len = kMiB;
  char *p = allocate(len);
  ASSERT_NE(p, nullptr);
  fill_pages(p, 0, len);
  std::vector<char *> blockers;
  const region::Stats before = region::stats();
  int steps = 0;
  for (; len < 1024 * kMiB; len *= 2, ++steps) {
    // As large as the region: it fits none of the holes the region left behind, so first
    // fit puts it right after the region, and the growth has to move.
    blockers.push_back(allocate(len));
    ASSERT_NE(blockers.back(), nullptr);
    const long faults_before = minor_faults();
    char *q = grow(p, 2 * len);
    ASSERT_NE(q, nullptr) << len;
    // Reading every old page back costs no fault either: the page tables moved.
    ASSERT_EQ(first_bad_page(q, 0, len), len) << "growing to " << 2 * len;
    const long faults = minor_faults() - faults_before;
    EXPECT_LT(faults, 64) << "growing to " << 2 * len << " (" << len / kPage << " pages)";
    EXPECT_EQ(region::usable_size(q), 2 * len);
    fill_pages(q, len, 2 * len);
    p = q;
  }
  const region::Stats after = region::stats();
  EXPECT_EQ(after.moved - before.moved, static_cast<uint64_t>(steps));
  // The region grew by 1023 MiB; the blockers hold 1 + 2 + ... + 512 MiB.
  EXPECT_EQ(after.bytes - before.bytes, 2 * 1023 * kMiB);
  EXPECT_TRUE(region::release(p));
  for (char *b : blockers) EXPECT_TRUE(region::release(b));
}

TEST(Region, GrowsInPlaceWhenTheSpaceAfterIsFree) {
  char *p = allocate(kMiB);
  ASSERT_NE(p, nullptr);
  fill_pages(p, 0, kMiB);
  const region::Stats before = region::stats();
  const long faults_before = minor_faults();
  ASSERT_EQ(grow(p, 64 * kMiB), p);
  EXPECT_LT(minor_faults() - faults_before, 64);
  EXPECT_EQ(region::stats().grown_in_place - before.grown_in_place, 1u);
  EXPECT_EQ(first_bad_page(p, 0, kMiB), kMiB);
  EXPECT_EQ(std::count(p + kMiB, p + 2 * kMiB, 0), static_cast<long>(kMiB)) << "new pages are zero";

  // In place after a move, then a move again: the region must still be one mapping
  // that mremap can take whole.
  char *blocker = allocate(1);
  char *q = grow(p, 128 * kMiB);
  ASSERT_NE(q, nullptr);
  ASSERT_NE(q, p);
  fill_pages(q, kMiB, 128 * kMiB);
  ASSERT_EQ(grow(q, 192 * kMiB), q);
  fill_pages(q, 128 * kMiB, 192 * kMiB);
  // Larger than the hole q left behind, so it lands right after q.
  char *blocker2 = allocate(128 * kMiB);
  char *r = grow(q, 256 * kMiB);
  ASSERT_NE(r, nullptr);
  ASSERT_NE(r, q);
  EXPECT_EQ(first_bad_page(r, 0, 192 * kMiB), 192 * kMiB);
  const region::Stats after = region::stats();
  EXPECT_EQ(after.grown_in_place - before.grown_in_place, 2u);
  EXPECT_EQ(after.moved - before.moved, 2u);
  EXPECT_TRUE(region::release(r));
  EXPECT_TRUE(region::release(blocker));
  EXPECT_TRUE(region::release(blocker2));
}

TEST(Region, ShrinkReturnsTheTailAndKeepsThePrefix) {
  char *p = allocate(64 * kMiB);
  ASSERT_NE(p, nullptr);
  fill_pages(p, 0, 64 * kMiB);
  const size_t full = rss_bytes();
  ASSERT_EQ(grow(p, 16 * kMiB), p);
  EXPECT_EQ(region::usable_size(p), 16 * kMiB);
  EXPECT_LE(rss_bytes(), full - 44 * kMiB);
  EXPECT_EQ(first_bad_page(p, 0, 16 * kMiB), 16 * kMiB);
  EXPECT_TRUE(killed_by_segv(in_child([&] { p[16 * kMiB] = 1; })));
  // Growing back brings fresh pages.
  ASSERT_EQ(grow(p, 64 * kMiB), p);
  EXPECT_EQ(first_bad_page(p, 0, 16 * kMiB), 16 * kMiB);
  EXPECT_EQ(std::count(p + 16 * kMiB, p + 64 * kMiB, 0), static_cast<long>(48 * kMiB));
  EXPECT_TRUE(region::release(p));
}

TEST(Region, ZeroUnusedClearsWhatShrinkingLeavesMapped) {
  char *p = allocate(3 * kPage, 0, true);
  ASSERT_NE(p, nullptr);
  memset(p, 0xff, 3 * kPage);
  ASSERT_EQ(grow(p, 100), p);
  EXPECT_EQ(region::usable_size(p), kPage);
  EXPECT_EQ(std::count(p, p + 100, static_cast<char>(0xff)), 100);
  EXPECT_EQ(std::count(p + 100, p + kPage, 0), static_cast<long>(kPage - 100));
  ASSERT_EQ(grow(p, 3 * kPage), p);
  EXPECT_EQ(std::count(p + 100, p + 3 * kPage, 0), static_cast<long>(3 * kPage - 100));
  EXPECT_TRUE(region::release(p));
}

TEST(Region, ManyLiveRegionsAreFoundUntilReleased) {
  std::vector<char *> live;
  for (int i = 0; i < 3000; ++i) {
    live.push_back(allocate((i % 7 + 1) * kPage));
    ASSERT_NE(live.back(), nullptr) << i;
  }
  // Release in a scrambled order; every region left must still be found.
  for (size_t step = 0; !live.empty(); ++step) {
    const size_t i = (step * 7919) % live.size();
    ASSERT_TRUE(region::release(live[i]));
    live.erase(live.begin() + static_cast<long>(i));
    if (step % 100 == 0) {
      for (size_t j = 0; j < live.size(); ++j) ASSERT_NE(region::usable_size(live[j]), 0u);
    }
  }
}

TEST(Region, ThreadsAllocateGrowAndRelease) {
  const region::Stats before = region::stats();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &failures] {
      uint64_t rng = 0x9e3779b97f4a7c15ull * (t + 1);
      for (int i = 0; i < 200; ++i) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        const size_t len = (rng % 512 + 1) * kPage;
        const uint64_t seed = (uint64_t(t) << 16) | i;
        char *p = allocate(len);
        if (p == nullptr) {
          ++failures;
          continue;
        }
        fill_pages(p, 0, len, seed);
        char *q = grow(p, 3 * len);
        if (q == nullptr || first_bad_page(q, 0, len, seed) != len ||
            region::usable_size(q) != 3 * len) {
          ++failures;
          region::release(q == nullptr ? p : q);
          continue;
        }
        if (grow(q, len / 2) != q || first_bad_page(q, 0, round_to_pages(len / 2), seed) !=
                                         round_to_pages(len / 2))
          ++failures;
        if (!region::release(q)) ++failures;
      }
    });
  }
  for (std::thread &t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  const region::Stats after = region::stats();
  EXPECT_EQ(after.regions, before.regions);
  EXPECT_EQ(after.bytes, before.bytes);
}

TEST(Region, FailuresSetErrno) {
  errno = 0;
  EXPECT_EQ(allocate(region::g_window_size.load() + 1), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(allocate(SIZE_MAX), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(allocate(kPage, 3 * kPage), nullptr);
  EXPECT_EQ(errno, EINVAL);

  char *p = allocate(kMiB);
  ASSERT_NE(p, nullptr);
  fill_pages(p, 0, kMiB);
  errno = 0;
  EXPECT_EQ(grow(p, SIZE_MAX), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(grow(p, region::g_window_size.load()), nullptr) << "no room for it beside p";
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_EQ(region::usable_size(p), kMiB);
  EXPECT_EQ(first_bad_page(p, 0, kMiB), kMiB);
  errno = 0;
  EXPECT_EQ(grow(p + kPage, 2 * kMiB), nullptr);
  EXPECT_EQ(errno, EINVAL);

  errno = EDOM;
  EXPECT_FALSE(region::release(p + kPage));
  EXPECT_EQ(errno, EDOM);
  EXPECT_TRUE(region::release(p));
  EXPECT_EQ(errno, EDOM);
  EXPECT_FALSE(region::release(p)) << "already released";
  EXPECT_EQ(errno, EDOM);
}

size_t max_map_count() {
  FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
  size_t n = 0;
  EXPECT_EQ(fscanf(f, "%zu", &n), 1);
  fclose(f);
  return n;
}

// A guarded region costs two kernel mappings, and past vm.max_map_count every mmap in the
// process fails: regions stop at a quarter of it, leaving the process room.
TEST(Region, LiveRegionsStayWellBelowTheMappingLimit) {
  const size_t cap = std::min<size_t>(65536, max_map_count() / 4);
  const int status = in_child([cap] {
    const size_t regions_before = region::stats().regions;
    std::vector<char *> all;
    for (char *p; (p = allocate(1)) != nullptr;) {
      p[0] = 1;
      all.push_back(p);
    }
    CHILD_CHECK(errno == ENOMEM, 1);
    CHILD_CHECK(regions_before + all.size() == cap, 1);
    CHILD_CHECK(
        mmap(nullptr, kPage, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED, 1);
    for (size_t i = 0; i < 100; i += 2) {
      char *q = grow(all[i], 3 * kPage);
      CHILD_CHECK(q != nullptr && q[0] == 1, 1);
      all[i] = q;
    }
    for (char *p : all) CHILD_CHECK(region::release(p), 1);
    CHILD_CHECK(region::stats().regions == regions_before, 1);
    char *p = allocate(kMiB);
    CHILD_CHECK(p != nullptr && region::release(p), 1);
  });
  EXPECT_EQ(status, 0);
}

// When the rest of the process has used up vm.max_map_count, release cannot mmap the
// pages away: it still gives them back, and the range is reused once mappings free up.
TEST(Region, ReleaseAtTheMappingLimitStillReturnsThePages) {
  const int status = in_child([] {
    char *p = allocate(16 * kMiB);
    CHILD_CHECK(p != nullptr, 1);
    fill_pages(p, 0, 16 * kMiB);
    std::vector<void *> mappings;
    mappings.reserve(max_map_count() + 1);
    // Alternating protections, so that neighbours do not merge into one mapping.
    for (int prot = PROT_READ;; prot ^= PROT_WRITE) {
      void *m = mmap(nullptr, kPage, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED) break;
      mappings.push_back(m);
    }
    const size_t full = rss_bytes();
    CHILD_CHECK(region::release(p), 1);
    CHILD_CHECK(rss_bytes() <= full - 12 * kMiB, 1);
    for (void *m : mappings) munmap(m, kPage);
    char *q = allocate(16 * kMiB);
    CHILD_CHECK(q == p && q[0] == 0 && q[16 * kMiB - 1] == 0, 1);
    CHILD_CHECK(region::release(q), 1);
  });
  EXPECT_EQ(status, 0);
}

TEST(Region, WithoutGuardRegionsAreAdjacent) {
  region::set_guard(false);
  char *a = allocate(kPage);
  char *b = allocate(kPage);
  region::set_guard(true);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b, a + kPage);
  // a cannot grow in place past b, so it moves; b is untouched.
  b[0] = 7;
  char *moved = grow(a, 2 * kPage);
  ASSERT_NE(moved, nullptr);
  EXPECT_NE(moved, a);
  EXPECT_EQ(b[0], 7);
  EXPECT_TRUE(region::release(moved));
  EXPECT_TRUE(region::release(b));
}

// The window size can be set only before the first region, so these run in a fresh
// process: the threadsafe death-test style re-executes this binary for the statement.
void small_window() {
  int on_stack = 0;
  CHILD_CHECK(region::g_window_size.load() == 0, 1);
  CHILD_CHECK(!region::contains(&on_stack) && !region::contains(nullptr), 1);
  CHILD_CHECK(region::set_window_size(256 * kMiB), 1);
  // Forty times what the window holds at once: address space is reused.
  for (int i = 0; i < 10000; ++i) {
    char *p = allocate(16 * kMiB);
    CHILD_CHECK(p != nullptr, 1);
    p[0] = 1;
    p[16 * kMiB - 1] = 1;
    CHILD_CHECK(region::release(p), 1);
  }
  CHILD_CHECK(!region::set_window_size(kMiB), 1);
  // 16 MiB and a guard page: 15 fit in 256 MiB.
  std::vector<char *> all;
  for (char *p; (p = allocate(16 * kMiB)) != nullptr;) all.push_back(p);
  CHILD_CHECK(errno == ENOMEM, 1);
  CHILD_CHECK(all.size() == 15, 1);
  fill_pages(all[0], 0, 16 * kMiB);
  errno = 0;
  CHILD_CHECK(grow(all[0], 32 * kMiB) == nullptr && errno == ENOMEM, 1);
  CHILD_CHECK(first_bad_page(all[0], 0, 16 * kMiB) == 16 * kMiB, 1);
  // Once its neighbour goes, it grows in place.
  CHILD_CHECK(region::release(all[1]), 1);
  CHILD_CHECK(grow(all[0], 32 * kMiB) == all[0], 1);
  CHILD_CHECK(first_bad_page(all[0], 0, 16 * kMiB) == 16 * kMiB, 1);
  CHILD_CHECK(region::release(all[0]), 1);
  for (size_t i = 2; i < all.size(); ++i) CHILD_CHECK(region::release(all[i]), 1);
  // All of it coalesced again: one region as large as the window less its guard and the
  // page kept reserved at each end.
  char *whole = allocate(256 * kMiB - 3 * kPage);
  CHILD_CHECK(whole != nullptr && region::release(whole), 1);
  _exit(0);
}

TEST(RegionDeathTest, SmallWindowReusesAddressSpaceAndRunsOut) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(small_window(), testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace allocscope
