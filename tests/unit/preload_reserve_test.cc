// preload_reserve_test.cc: per-thread reserves (allocscope_reserve) and the atomic reserve
// (nowait_reserve) under the preload, with real threads and child processes. Children
// report through their exit status: each check that fails exits with its own code.
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <utility>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <jemalloc/jemalloc.h>

#include "allocscope.h"
#include "allocscope.hpp"
#include "preload_support.h"

namespace {

constexpr size_t kKiB = 1 << 10;
using preload_support::engaged;
using preload_support::kMiB;
using preload_support::stat;
using test_support::in_child;
using test_support::statm;

class Reserve : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_PRELOADED();
    ASSERT_EQ(log_.start("warn_burst:0,strict:false"), 0);
  }
  void TearDown() override {
    allocscope_reserve_release();
    allocscope_limit_set(0);
    allocscope_config("nowait_reserve:0");
  }
  std::string log() const { return log_.text(); }

  preload_support::ReportLog log_;
};

TEST_F(Reserve, CompletesItsAllocationsWhileAnotherThreadKeepsTheBudgetExhausted) {
  ASSERT_EQ(allocscope_limit_set(allocscope_charged() + 16 * kMiB), 0);
  std::atomic<int> stage{0};
  std::vector<void *> mine;
  bool reserved_ok = false;
  int failed_with_reserve = 0;
  std::thread with_reserve([&] {
    reserved_ok = allocscope_reserve(2 * kMiB) == 0;
    stage = 1;
    while (stage != 2) std::this_thread::yield();
    allocscope::Scope scope(ALLOCSCOPE_RESERVE | ALLOCSCOPE_NOWAIT);
    // Mixed sizes, 1.5 MiB of usable size and large-block pages in all.
    const size_t sizes[] = {24, 100, 700, 3000, 20000, 70000, 300000};
    size_t total = 0;
    for (int i = 0; total < 3 * kMiB / 2; ++i) {
      const size_t size = sizes[i % 7];
      void *p = malloc(size);
      if (p == nullptr) ++failed_with_reserve;
      else memset(p, 0x5a, size);
      mine.push_back(p);
      total += size + (size > 14336 ? 4096 : 0);
    }
    stage = 3;
  });
  while (stage != 1) std::this_thread::yield();
  ASSERT_TRUE(reserved_ok);
  // Started before the budget is full: creating a thread allocates.
  std::atomic<bool> full{false};
  std::thread without_reserve([&] {
    while (!full) std::this_thread::yield();
    allocscope::Scope scope(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
    errno = 0;
    void *p = malloc(64 * kKiB);
    EXPECT_EQ(p, nullptr) << "the budget is exhausted: no reserve, no memory";
    EXPECT_EQ(errno, ENOMEM);
    free(p);
  });

  // Fill the budget from this thread until even small NOWAIT allocations fail.
  std::vector<void *> ballast;
  ballast.reserve(1000);
  for (size_t size : {kMiB, 64 * kKiB, 4 * kKiB})
    while (void *p = allocscope_alloc(size, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN))
      ballast.push_back(p);
  full = true;
  without_reserve.join();

  stage = 2;
  while (stage != 3) std::this_thread::yield();
  with_reserve.join();
  EXPECT_EQ(failed_with_reserve, 0);
  EXPECT_EQ(stat("exhausted", "reserves"), 0u);
  // Blocks from a reserve are ordinary: freed here, on another thread.
  for (void *p : mine) free(p);
  for (void *p : ballast) free(p);
}

TEST_F(Reserve, ReleaseGivesTheUnusedBytesBackToTheBudget) {
  ASSERT_EQ(allocscope_limit_set(allocscope_charged() + 64 * kMiB), 0);
  const size_t before = allocscope_charged();
  ASSERT_EQ(allocscope_reserve(2 * kMiB), 0);
  EXPECT_EQ(allocscope_charged(), before + 2 * kMiB);
  EXPECT_EQ(allocscope_reserve_left(), 2 * kMiB);
  void *p;
  {
    allocscope::Scope scope(ALLOCSCOPE_RESERVE);
    p = malloc(64 * kKiB);  // a size class: usable 64 KiB, and a page of the arena's
  }
  ASSERT_NE(p, nullptr);
  const size_t left = 2 * kMiB - 64 * kKiB - 4 * kKiB;
  EXPECT_EQ(allocscope_reserve_left(), left);
  const size_t charged = allocscope_charged();
  EXPECT_EQ(allocscope_reserve_release(), left);
  EXPECT_EQ(allocscope_reserve_left(), 0u);
  EXPECT_EQ(allocscope_charged(), charged - left);
  EXPECT_EQ(stat("high_water", "last"), 64 * kKiB + 4 * kKiB);
  free(p);
}

TEST_F(Reserve, ExhaustionIsReportedOnceAndCountedAndFallsBackToThePolicy) {
  const unsigned long long exhausted = stat("exhausted", "reserves");
  ASSERT_EQ(allocscope_reserve(64 * kKiB), 0);
  std::vector<void *> blocks;
  {
    allocscope::Scope scope(ALLOCSCOPE_RESERVE);
    for (int i = 0; i < 5; ++i) blocks.push_back(malloc(32 * kKiB));
  }
  for (void *p : blocks) EXPECT_NE(p, nullptr) << "the normal policy serves them";
  EXPECT_EQ(stat("exhausted", "reserves"), exhausted + 1);
  const std::string text = log();
  EXPECT_EQ(test_support::count_of(text, "reserve of 65536 bytes is exhausted"), 1) << text;
  for (void *p : blocks) free(p);
}

TEST_F(Reserve, ATooLargeReserveIsReportedAndReservesNothing) {
  const size_t before = allocscope_charged();
  EXPECT_EQ(allocscope_reserve(size_t{4} << 30), ENOMEM);
  EXPECT_EQ(allocscope_reserve_left(), 0u);
  EXPECT_EQ(allocscope_charged() / kMiB, before / kMiB);
  EXPECT_EQ(test_support::count_of(log(), "larger than reserves can hold"), 1) << log();
}

TEST_F(Reserve, UnderTheLimitTheReserveItselfFollowsThePolicy) {
  ASSERT_EQ(allocscope_limit_set(allocscope_charged() + 4 * kMiB), 0);
  allocscope::Scope scope(ALLOCSCOPE_NOWAIT);
  errno = 0;
  EXPECT_EQ(allocscope_reserve(8 * kMiB), ENOMEM);
  EXPECT_EQ(allocscope_reserve_left(), 0u);
  EXPECT_EQ(test_support::count_of(log(), "allocscope_reserve(8388608) failed: limit"), 1)
      << log();
}

TEST_F(Reserve, ReallocGrowsFromTheReserve) {
  ASSERT_EQ(allocscope_reserve(kMiB), 0);
  allocscope::Scope scope(ALLOCSCOPE_RESERVE);
  char *p = static_cast<char *>(malloc(100));
  ASSERT_NE(p, nullptr);
  memset(p, 7, 100);
  const size_t left = allocscope_reserve_left();
  p = static_cast<char *>(realloc(p, 200 * kKiB));
  ASSERT_NE(p, nullptr);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(p[i], 7);
  EXPECT_LT(allocscope_reserve_left(), left - 200 * kKiB);
  free(p);
}

TEST_F(Reserve, CxxGuardReservesScopesAndReleases) {
  {
    allocscope::Reserve reserve(256 * kKiB);
    ASSERT_TRUE(reserve.ok());
    EXPECT_TRUE(allocscope_current() & ALLOCSCOPE_RESERVE);
    auto *v = new std::vector<char>(100 * kKiB, 'x');
    EXPECT_LT(reserve.left(), 256 * kKiB - 100 * kKiB);
    delete v;
  }
  EXPECT_FALSE(allocscope_current() & ALLOCSCOPE_RESERVE);
  EXPECT_EQ(allocscope_reserve_left(), 0u);
}

TEST_F(Reserve, AThreadThatExitsInsideScopesLeavesTheFastPathAsItWas) {
  const std::string before = engaged();
  ASSERT_EQ(before.find("reserve_scope"), std::string::npos) << before;
  ASSERT_EQ(before.find("on_failure"), std::string::npos) << before;
  std::thread([] {
    allocscope_save(ALLOCSCOPE_NOFAIL | ALLOCSCOPE_KV | ALLOCSCOPE_RESERVE);
    EXPECT_NE(engaged().find("on_failure"), std::string::npos);
    EXPECT_NE(engaged().find("reserve_scope"), std::string::npos);
    ASSERT_EQ(allocscope_reserve(64 * kKiB), 0);
  }).join();  // no restore: the thread exits inside its scope, holding a reserve
  EXPECT_EQ(engaged(), before);
  EXPECT_EQ(stat("unused_bytes", "reserves"), 0u) << "the exit released the reserve";
}

// Address space used now, from /proc/self/status (VmSize, in bytes).
size_t address_space() {
  const std::string status = test_support::read_file("/proc/self/status");
  const size_t at = status.find("VmSize:");
  return at == std::string::npos ? 0 : strtoull(status.c_str() + at + 7, nullptr, 10) * kKiB;
}

TEST_F(Reserve, SurvivesALoweredAddressSpaceLimit) {
  const int status = in_child([] {
    if (allocscope_reserve(4 * kMiB) != 0) return 10;
    rlimit limit{address_space(), RLIM_INFINITY};
    if (setrlimit(RLIMIT_AS, &limit) != 0) return 11;
    // Unreserved allocations fail once jemalloc's spare memory is used up...
    std::vector<void *> spare;
    while (void *p = allocscope_alloc(256 * kKiB, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN))
      spare.push_back(p);
    if (malloc(256 * kKiB) != nullptr || errno != ENOMEM) return 12;
    // ... reserved ones do not, 3.5 MiB of them (jemalloc serves what it still can
    // without the system, the premapped arena the rest)...
    {
      allocscope::Scope scope(ALLOCSCOPE_RESERVE);
      for (int i = 0; i < 14; ++i) {
        char *p = static_cast<char *>(malloc(256 * kKiB - 4 * kKiB));
        if (p == nullptr) return 20 + i;
        memset(p, 1, 256 * kKiB - 4 * kKiB);
      }
    }
    if (stat("from_premapped", "reserves") == 0) return 13;
    // ... and unreserved ones still fail.
    if (allocscope_alloc(256 * kKiB, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN) != nullptr)
      return 14;
    return 0;
  });
  EXPECT_EQ(status, 0);
}

// The atomic reserve.

// The jemalloc arena a block belongs to.
unsigned arena_of(void *p) {
  unsigned index = ~0u;
  size_t len = sizeof(index);
  return mallctl("arenas.lookup", &index, &len, &p, sizeof(p)) == 0 ? index : ~0u;
}

// Ordinary allocations refill it from half; with none, NOWAIT allocations refill it
// themselves below a quarter, so that NOWAIT alone is not capped at N bytes.
TEST_F(Reserve, NowaitAllocationsDrawOnTheAtomicReserveAndRefillIt) {
  ASSERT_EQ(allocscope_config("nowait_reserve:1M"), 0);
  std::vector<void *> blocks;
  blocks.reserve(1024);
  const unsigned long long refills = stat("refills", "nowait_reserve");
  // Down to between a half and a quarter: no refill yet.
  while (stat("available", "nowait_reserve") > 400 * kKiB) {
    void *p = allocscope_alloc(8 * kKiB, ALLOCSCOPE_NOWAIT);
    ASSERT_NE(p, nullptr);
    blocks.push_back(p);
  }
  EXPECT_GE(blocks.size(), 50u);
  EXPECT_EQ(stat("refills", "nowait_reserve"), refills);
  void *volatile ordinary = malloc(16);  // an ordinary allocation refills it
  EXPECT_NE(arena_of(ordinary), arena_of(blocks[0])) << "NOWAIT blocks: the reserve's arena";
  for (void *p : blocks) EXPECT_EQ(arena_of(p), arena_of(blocks[0]));
  free(ordinary);
  EXPECT_EQ(stat("refills", "nowait_reserve"), refills + 1);
  EXPECT_GE(stat("available", "nowait_reserve"), kMiB);
  // Four times N in NOWAIT allocations alone.
  for (int i = 0; i < 512; ++i) {
    void *p = allocscope_alloc(8 * kKiB, ALLOCSCOPE_NOWAIT);
    ASSERT_NE(p, nullptr) << i << "\n" << log();
    blocks.push_back(p);
  }
  EXPECT_GE(stat("refills", "nowait_reserve"), refills + 3);
  EXPECT_EQ(arena_of(blocks.back()), arena_of(blocks[0]));
  for (void *p : blocks) free(p);
}

// Counts the memory-mapping system calls a child makes once the filter is installed;
// the handler makes each fail with ENOSYS. A refill of the atomic reserve is an mmap
// with MAP_FIXED_NOREPLACE (premapped_arena.cc); g_served counts the blocks served so far.
std::atomic<int> g_trapped{0}, g_trapped_other{0}, g_served{0}, g_served_at_first_trap{-1};
void on_sigsys(int, siginfo_t *info, void *context) {
  auto *uc = static_cast<ucontext_t *>(context);
  const bool refill = info->si_syscall == SYS_mmap &&
                      (uc->uc_mcontext.gregs[REG_R10] & MAP_FIXED_NOREPLACE) != 0;
  if (g_trapped.fetch_add(1) == 0) g_served_at_first_trap.store(g_served.load());
  if (!refill) g_trapped_other.fetch_add(1);
  uc->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
}

// The checks both tests below make once the reserve ran out: no memory system call but
// the refill a NOWAIT allocation makes when the reserve is nearly empty and nothing else
// refilled it (here refused: ENOSYS; then not tried again for 10 ms, so a few times at
// most), and that only after two thirds of the blocks were served; then ENOMEM.
int after_the_drain(int at_least) {
  const int other = g_trapped_other.load();
  if (other != 0) return 20 + (other > 50 ? 50 : other);
  if (g_trapped.load() < 1 || g_trapped.load() > 20) return 12;
  if (g_served_at_first_trap.load() * 3 < g_served.load() * 2) return 13;
  if (errno != ENOMEM) return 14;
  if (g_served.load() < at_least) return 15;
  return 0;
}

bool trap_memory_syscalls() {
  struct sigaction sa {};
  sa.sa_sigaction = on_sigsys;
  sa.sa_flags = SA_SIGINFO;
  if (sigaction(SIGSYS, &sa, nullptr) != 0) return false;
  const int trapped[] = {SYS_mmap, SYS_munmap, SYS_brk, SYS_mremap, SYS_madvise, SYS_mprotect};
  std::vector<sock_filter> prog;
  prog.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
  for (int nr : trapped) {
    prog.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<unsigned>(nr), 0, 1));
    prog.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP));
  }
  prog.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  sock_fprog fprog{static_cast<unsigned short>(prog.size()), prog.data()};
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) == 0;
}

TEST_F(Reserve, NowaitAllocationsMakeNoMemorySystemCallButTheRefillWhenNearlyEmpty) {
  const int status = in_child([] {
    if (allocscope_config("nowait_reserve:8M") != 0) return 10;
    allocscope::Scope scope(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
    free(malloc(64));  // the thread's first NOWAIT allocation, before the filter
    if (!trap_memory_syscalls()) return 11;
    errno = 0;
    // Sizes from 16 bytes to 96 KiB (small and large blocks), until the reserve is empty.
    for (size_t size = 16;; size = size * 3 % (96 * kKiB) + 16) {
      if (malloc(size) == nullptr) break;
      g_served.fetch_add(1);
    }
    return after_the_drain(100);  // 8 MiB of blocks of 48 KiB on average
  });
  EXPECT_EQ(status, 0) << "20 + n: n memory system calls other than the refill; 12: no "
                          "refill, or dozens; 13: a refill before two thirds of the blocks";
}

// KV in the same scope must not turn to a region (an mmap) when the reserve runs out:
// the allocation fails instead, like any NOWAIT one the reserve cannot serve.
TEST_F(Reserve, NowaitKvAllocationsMakeNoMemorySystemCallButTheRefill) {
  const int status = in_child([] {
    if (allocscope_config("nowait_reserve:8M") != 0) return 10;
    allocscope::Scope scope(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_KV | ALLOCSCOPE_NOWARN);
    free(malloc(64));
    if (!trap_memory_syscalls()) return 11;
    errno = 0;
    while (malloc(kMiB) != nullptr) g_served.fetch_add(1);  // above kv_threshold (64 KiB)
    return after_the_drain(4);  // 8 MiB of 1 MiB blocks, some of it taken by metadata
  });
  EXPECT_EQ(status, 0) << "20 + n: n memory system calls (a region?) other than the refill";
}

// Whether the file at `path` contains `what`. Allocates nothing.
bool file_contains(const char *path, const char *what) {
  static char text[1 << 16];
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const ssize_t n = read(fd, text, sizeof(text) - 1);
  close(fd);
  text[n > 0 ? n : 0] = '\0';
  return strstr(text, what) != nullptr;
}

// A reserve needs little address space: its window is sized to what is reserved. This
// runs in a fresh process (the threadsafe death-test style starts this binary again for
// the statement), where neither premapped arena exists yet.
using ReserveDeathTest = Reserve;

void reserve_with_64m_of_address_space() {
  rlimit limit{statm().size + 64 * kMiB, RLIM_INFINITY};
  CHILD_CHECK(setrlimit(RLIMIT_AS, &limit) == 0, 10);
  CHILD_CHECK(allocscope_reserve(kMiB) == 0, 11);
  CHILD_CHECK(allocscope_config("nowait_reserve:1M") == 0, 12);
  // With none to spare, jemalloc's ordinary arenas run dry and RESERVE allocations are
  // served by the reserves' premapped arena.
  std::vector<void *> spare;
  spare.reserve(4096);
  limit.rlim_cur = statm().size;
  CHILD_CHECK(setrlimit(RLIMIT_AS, &limit) == 0, 13);
  while (void *p = allocscope_alloc(256 * kKiB, ALLOCSCOPE_NORETRY | ALLOCSCOPE_NOWARN))
    spare.push_back(p);
  CHILD_CHECK(malloc(256 * kKiB) == nullptr, 14);
  {
    allocscope::Scope scope(ALLOCSCOPE_RESERVE);
    for (int i = 0; i < 3; ++i) {
      char *p = static_cast<char *>(malloc(252 * kKiB));  // and a page each: 768 KiB
      CHILD_CHECK(p != nullptr, 20 + i);
      memset(p, 1, 252 * kKiB);
    }
  }
  CHILD_CHECK(stat("from_premapped", "reserves") != 0, 15);
  _exit(0);
}

TEST_F(ReserveDeathTest, AReserveNeedsOnlyTheAddressSpaceItReserves) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(reserve_with_64m_of_address_space(), testing::ExitedWithCode(0), "")
      << "11: allocscope_reserve(1M) failed; 12: nowait_reserve:1M failed; 2x: a RESERVE "
         "allocation failed";
}

// With no address space at all the reserve fails, and the report says what failed.
void reserve_without_address_space(const char *log) {
  rlimit limit{statm().size, RLIM_INFINITY};
  CHILD_CHECK(setrlimit(RLIMIT_AS, &limit) == 0, 10);
  CHILD_CHECK(allocscope_reserve(kMiB) == ENOMEM, 11);
  CHILD_CHECK(file_contains(log, "allocscope_reserve(1048576) failed: the reserves' premapped "
                                 "arena could not provide it: no address space for its window"),
              12);
  CHILD_CHECK(file_contains(log, "ENOMEM: RLIMIT_AS"), 13);
  CHILD_CHECK(!file_contains(log, "jemalloc could not map memory"), 14);
  _exit(0);
}

TEST_F(ReserveDeathTest, AReserveWithoutAddressSpaceSaysWhatFailed) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(reserve_without_address_space(log_.path().c_str()), testing::ExitedWithCode(0),
              "")
      << "12-14: the report does not say what failed";
}

// allocscope_reserve_release() gives the pages back, except what the reserves still live
// need: those stay, and keep serving.
TEST_F(Reserve, ReleaseGivesThePagesBackButKeepsThoseOfLiveReserves) {
  const int status = in_child([] {
    std::atomic<int> stage{0};
    int served = 0;
    std::thread other([&] {
      if (allocscope_reserve(64 * kMiB) != 0) {
        stage = -1;
        return;
      }
      stage = 1;
      while (stage != 2) std::this_thread::yield();
      allocscope::Scope scope(ALLOCSCOPE_RESERVE);
      for (int i = 0; i < 200; ++i) {  // 50 MiB
        char *p = static_cast<char *>(malloc(252 * kKiB));
        if (p != nullptr) memset(p, 1, 252 * kKiB);
        served += p != nullptr;
      }
    });
    while (stage == 0) std::this_thread::yield();
    if (stage < 0) {
      other.join();
      return 10;
    }
    const int failed = [] {
      const size_t before = statm().resident;
      if (allocscope_reserve(512 * kMiB) != 0) return 11;
      if (statm().resident < before + 500 * kMiB) return 12;  // mapped and populated
      if (allocscope_reserve_release() != 512 * kMiB) return 13;
      const size_t kept = (statm().resident - before) / kMiB;
      if (kept > 16) return 100 + (kept > 150 ? 150 : static_cast<int>(kept));
      // No address space to spare: the live reserve is served from its premapped pages.
      rlimit limit{statm().size, RLIM_INFINITY};
      return setrlimit(RLIMIT_AS, &limit) != 0 ? 14 : 0;
    }();
    stage = 2;
    other.join();
    if (failed != 0) return failed;
    return served == 200 ? 0 : 15;
  });
  EXPECT_EQ(status, 0) << "100 + n: n MiB more resident after the release than before the "
                          "reserve; 15: the live reserve could not serve";
}

// The atomic reserve serves a 64 KiB NOWAIT block again after an ordinary allocation
// refilled it, also once jemalloc needs a new metadata block for it, which is larger than
// N and 2 MiB-aligned (the first one fills after some 16,000 extents).
TEST_F(Reserve, LargeNowaitBlocksAreServedAgainAfterARefill) {
  const int status = in_child([] {
    if (allocscope_config("nowait_reserve:1M") != 0) return 10;
    std::vector<void *> live;
    live.reserve(100000);
    auto nowait = [&](size_t size) {
      void *p = allocscope_alloc(size, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
      if (p != nullptr) live.push_back(p);
      return p != nullptr;
    };
    auto ordinary_refill = [] {
      for (int i = 0; i < 100 && stat("available", "nowait_reserve") < kMiB; ++i) {
        void *volatile ordinary = malloc(16);
        free(ordinary);
      }
      return stat("available", "nowait_reserve") >= kMiB;
    };
    // Drained by 64 KiB NOWAIT blocks, still live (down to its min watermark: below it
    // NOWAIT allocations would refill it themselves), refilled by ordinary allocations,
    // then one more 64 KiB NOWAIT block.
    auto sequence = [&] {
      int drained = 0;
      while (stat("available", "nowait_reserve") > kMiB / 4 + 128 * kKiB && nowait(64 * kKiB))
        ++drained;
      const unsigned long long refills = stat("refills", "nowait_reserve");
      if (!ordinary_refill() || (drained > 0 && stat("refills", "nowait_reserve") == refills))
        return 1;
      return nowait(64 * kKiB) ? 0 : 2;
    };
    if (const int failed = sequence()) return 20 + failed;
    // 70,000 live 1 KiB blocks: some 17,500 slabs, whose metadata fills the first block.
    for (int i = 0; i < 70000; ++i)
      if (!nowait(kKiB) && !(ordinary_refill() && nowait(kKiB))) break;
    if (const int failed = sequence()) return 30 + failed;
    return 0;
  });
  EXPECT_EQ(status, 0) << "2x: the sequence failed on a fresh reserve, 3x: after 70,000 "
                          "blocks; x = 1: no refill, 2: the 64 KiB block after it";
}

// An atomic reserve that cannot serve says so: too large a request, and refills refused.
TEST_F(Reserve, AnAtomicReserveThatCannotServeIsNamedInTheReport) {
  const int status = in_child([] {
    if (allocscope_config("nowait_reserve:1M") != 0) return 10;
    std::vector<void *> live;
    live.reserve(10000);
    // Larger than N and all the reserve has handed out: no refill is made for it.
    if (allocscope_alloc(256 * kMiB, ALLOCSCOPE_NOWAIT) != nullptr) return 11;
    // No address space to spare: its refills are refused; it serves what it has.
    rlimit limit{statm().size, RLIM_INFINITY};
    if (setrlimit(RLIMIT_AS, &limit) != 0) return 12;
    errno = 0;
    while (void *p = allocscope_alloc(64 * kKiB, ALLOCSCOPE_NOWAIT)) live.push_back(p);
    if (errno != ENOMEM) return 13;
    return live.size() >= 4 ? 0 : 14;
  });
  EXPECT_EQ(status, 0);
  const std::string text = log();
  EXPECT_EQ(test_support::count_of(text, "allocscope_alloc(268435456) failed: the atomic "
                                         "reserve (nowait_reserve:1048576) could not serve it"),
            1)
      << text;
  EXPECT_NE(text.find("larger than the reserve and all it holds"), std::string::npos);
  EXPECT_NE(text.find("allocscope_alloc(65536) failed: the atomic reserve "
                      "(nowait_reserve:1048576) could not serve it"),
            std::string::npos);
  EXPECT_NE(text.find("its last refill failed: mapping"), std::string::npos);
  EXPECT_NE(text.find("ENOMEM: RLIMIT_AS"), std::string::npos);
  EXPECT_EQ(text.find("jemalloc could not map memory"), std::string::npos);
}

// python3 under policy:nowait (so NOWAIT is every allocation's contract: nothing ordinary
// refills the reserve) with an 8 MiB atomic reserve, doing real work: it allocates well
// over 8 MiB in all, but never holds that much (tracemalloc's peak for it: 7.7 MB).
constexpr char kPythonWork[] = R"(
import hashlib, json, zlib
h = hashlib.sha256()
keep = []
for rnd in range(60):
    rows = [{"id": i, "name": "n%d" % (i * rnd), "tags": ["t%d" % (i % 7)] * (rnd % 5 + 1),
             "text": "x" * (600 + 37 * ((i + rnd) % 50))} for i in range(600)]
    s = json.dumps(rows, sort_keys=True)
    back = json.loads(s)
    h.update(zlib.compress(s.encode(), 1))
    keep.append(back[rnd * 13 % len(back)])
    keep = keep[-20:]
print(len(keep), h.hexdigest())
)";

// Runs argv with ALLOCSCOPE_CONF=conf, or without the preload (conf nullptr): its stdout
// and wait status.
std::pair<std::string, int> run(const char *const argv[], const char *conf) {
  int out[2];
  if (pipe(out) != 0) return {"", -1};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    if (conf != nullptr)
      setenv("ALLOCSCOPE_CONF", conf, 1);
    else
      unsetenv("LD_PRELOAD");
    setenv("PYTHONHASHSEED", "0", 1);
    execv(argv[0], const_cast<char *const *>(argv));
    _exit(127);
  }
  close(out[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(out[0], buf, sizeof(buf))) > 0;) text.append(buf, n);
  close(out[0]);
  int status = -1;
  waitpid(pid, &status, 0);
  return {text, status};
}

TEST_F(Reserve, Python3UnderNowaitIsNotCappedAtTheAtomicReserve) {
  const char *const argv[] = {"/usr/bin/python3", "-c", kPythonWork, nullptr};
  if (access(argv[0], X_OK) != 0) GTEST_SKIP() << "no /usr/bin/python3";
  const auto plain = run(argv, nullptr);
  ASSERT_EQ(plain.second, 0);
  ASSERT_NE(plain.first, "");
  const std::string conf =
      "policy:nowait,nowait_reserve:8M,stats_print:true,log_file:" + log_.path();
  const auto preloaded = run(argv, conf.c_str());
  EXPECT_EQ(preloaded.second, 0) << log();
  EXPECT_EQ(preloaded.first, plain.first);
  // NOWAIT allocations refilled it themselves, and no allocation failed.
  const std::string text = log();
  const size_t at = text.find("\"nowait_reserve\":");
  ASSERT_NE(at, std::string::npos) << text;
  const size_t refills = text.find("\"refills\":", at);
  ASSERT_NE(refills, std::string::npos);
  EXPECT_GE(strtoull(text.c_str() + refills + 10, nullptr, 10), 1u);
  EXPECT_EQ(text.find("failed"), std::string::npos) << text;
}

}  // namespace
