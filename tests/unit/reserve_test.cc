// reserve_test.cc: per-thread reserves (allocscope_reserve) and the atomic reserve
// (nowait_reserve) under the preload, with real threads and child processes. Children
// report through their exit status: each check that fails exits with its own code.
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "allocscope.h"
#include "allocscope.hpp"
#include "test_support.h"

namespace {

constexpr size_t kKiB = 1 << 10;
constexpr size_t kMiB = 1 << 20;

// A number from the stats JSON: the first "key":N after "after". Allocates nothing (it
// runs in children that cannot allocate).
unsigned long long stat(const char *key, const char *after) {
  static char json[1 << 16];
  char quoted[64];
  if (allocscope_stats_json(json, sizeof(json)) >= static_cast<int>(sizeof(json))) return ~0ull;
  snprintf(quoted, sizeof(quoted), "\"%s\"", after);
  const char *at = strstr(json, quoted);
  snprintf(quoted, sizeof(quoted), "\"%s\":", key);
  at = at != nullptr ? strstr(at, quoted) : nullptr;
  return at != nullptr ? strtoull(at + strlen(quoted), nullptr, 10) : ~0ull;
}

// Runs fn in a forked child; returns its exit status (or 1000 + signal).
template <typename Fn>
int in_child(Fn fn) {
  const pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

class Reserve : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(allocscope_active(), 1) << "run under LD_PRELOAD=liballocscope.so";
    char tmpl[] = "/tmp/allocscope-reserve-XXXXXX";
    close(mkstemp(tmpl));
    log_path_ = tmpl;
    ASSERT_EQ(allocscope_config(("log_file:" + log_path_ + ",warn_burst:0,strict:false").c_str()),
              0);
  }
  void TearDown() override {
    allocscope_reserve_release();
    allocscope_limit_set(0);
    allocscope_config("log_file:/dev/stderr,nowait_reserve:0");
    unlink(log_path_.c_str());
  }
  std::string log() const { return test_support::read_file(log_path_); }

  std::string log_path_;
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

// The "engaged" bits of the stats, e.g. "limit|kv".
std::string engaged() {
  static char json[1 << 16];
  allocscope_stats_json(json, sizeof(json));
  const char *at = strstr(json, "\"engaged\":\"");
  if (at == nullptr) return "?";
  at += strlen("\"engaged\":\"");
  return std::string(at, strchr(at, '"'));
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

TEST_F(Reserve, NowaitAllocationsDrawOnTheAtomicReserveAndItRefills) {
  ASSERT_EQ(allocscope_config("nowait_reserve:1M"), 0);
  auto drain = [] {
    allocscope::Scope scope(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
    std::vector<void *> blocks;
    while (void *p = malloc(8 * kKiB)) blocks.push_back(p);
    return blocks;
  };
  std::vector<void *> first = drain();
  EXPECT_GE(first.size(), 100u) << "about 1 MiB of 8 KiB blocks";
  EXPECT_LE(first.size(), 260u) << "and not from the ordinary arenas";
  const unsigned long long refills = stat("refills", "nowait_reserve");
  void *volatile ordinary = malloc(16);  // an ordinary allocation refills it
  free(ordinary);
  EXPECT_EQ(stat("refills", "nowait_reserve"), refills + 1);
  std::vector<void *> second = drain();
  EXPECT_GE(second.size(), 100u);
  for (void *p : first) free(p);
  for (void *p : second) free(p);
}

// Counts the memory-mapping system calls a child makes once the filter is installed;
// the handler makes each fail with ENOSYS.
std::atomic<int> g_trapped{0};
void on_sigsys(int, siginfo_t *, void *context) {
  g_trapped.fetch_add(1);
  static_cast<ucontext_t *>(context)->uc_mcontext.gregs[REG_RAX] = -ENOSYS;
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

TEST_F(Reserve, NowaitAllocationsMakeNoMemorySystemCall) {
  const int status = in_child([] {
    if (allocscope_config("nowait_reserve:8M") != 0) return 10;
    allocscope::Scope scope(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
    free(malloc(64));  // the thread's first NOWAIT allocation, before the filter
    if (!trap_memory_syscalls()) return 11;
    int served = 0;
    errno = 0;
    // Sizes from 16 bytes to 96 KiB (small and large blocks), until the reserve is empty.
    for (size_t size = 16;; size = size * 3 % (96 * kKiB) + 16) {
      if (malloc(size) == nullptr) break;
      ++served;
    }
    if (g_trapped.load() != 0) return 20 + (g_trapped.load() > 50 ? 50 : g_trapped.load());
    if (errno != ENOMEM) return 12;
    if (served < 100) return 13;  // 8 MiB of blocks of 48 KiB on average
    return 0;
  });
  EXPECT_EQ(status, 0) << "20 + n: n memory system calls made by NOWAIT allocations";
}

// KV in the same scope must not turn to a region (an mmap) when the reserve runs out:
// the allocation fails instead, like any NOWAIT one the reserve cannot serve.
TEST_F(Reserve, NowaitKvAllocationsMakeNoMemorySystemCall) {
  const int status = in_child([] {
    if (allocscope_config("nowait_reserve:8M") != 0) return 10;
    allocscope::Scope scope(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_KV | ALLOCSCOPE_NOWARN);
    free(malloc(64));
    if (!trap_memory_syscalls()) return 11;
    int served = 0;
    errno = 0;
    while (malloc(kMiB) != nullptr) ++served;  // above kv_threshold (64 KiB)
    if (g_trapped.load() != 0) return 20 + (g_trapped.load() > 50 ? 50 : g_trapped.load());
    if (errno != ENOMEM) return 12;
    if (served < 4) return 13;  // 8 MiB of 1 MiB blocks, some of it taken by metadata
    return 0;
  });
  EXPECT_EQ(status, 0) << "20 + n: n memory system calls made by NOWAIT|KV allocations";
}

}  // namespace
