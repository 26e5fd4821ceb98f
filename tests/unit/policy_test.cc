// policy_test.cc: scopes, resolution, the budget and reclaim, with real threads, in a
// process under the preload. Each test sets a limit a few MiB above what is charged,
// fills it with ballast, and then watches what one allocation does: what it returned,
// errno, how long it took, which reclaimers ran, what a waiting thread saw, and what was
// reported (reports go to a log file the test reads back).
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <new>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "allocscope.h"
#include "allocscope.hpp"
#include "test_support.h"

namespace {

constexpr size_t kMiB = 1 << 20;

using Clock = std::chrono::steady_clock;
int64_t ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

// Reclaimers the tests register: each counts its calls and frees what it is given.
struct Reclaimable {
  std::atomic<int> calls{0};
  std::atomic<int> nested{0};  // calls that arrived while a call was running (recursion)
  std::atomic<bool> running{false};
  std::vector<void *> blocks;  // freed one per call
  allocscope_flags_t scope_seen = 0;
  void *inner_allocation = nullptr;
  bool allocate_inside = false;

  static size_t reclaim(void *arg, size_t /*wanted*/) {
    auto *self = static_cast<Reclaimable *>(arg);
    if (self->running.exchange(true)) ++self->nested;
    ++self->calls;
    self->scope_seen = allocscope_current();
    size_t freed = 0;
    if (self->allocate_inside && self->inner_allocation == nullptr)
      self->inner_allocation = malloc(512 << 10);  // under a full budget
    if (!self->blocks.empty()) {
      free(self->blocks.back());
      self->blocks.pop_back();
      freed = kMiB;
    }
    self->running = false;
    return freed;
  }
};

class Policy : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(allocscope_active(), 1) << "run under LD_PRELOAD=liballocscope.so";
    char tmpl[] = "/tmp/allocscope-policy-XXXXXX";
    int fd = mkstemp(tmpl);
    close(fd);
    log_path_ = tmpl;
    ASSERT_EQ(allocscope_config(("log_file:" + log_path_ +
                                 ",retry_max:3,stall_warn_ms:0,nofail_in_nowait:wait,"
                                 "emergency:0,strict:false,warn_burst:0")
                                    .c_str()),
              0);
    ASSERT_EQ(allocscope_limit_set(allocscope_charged() + 8 * kMiB + 512 * 1024), 0);
  }

  void TearDown() override {
    for (int id : reclaimers_) allocscope_reclaimer_remove(id);
    for (void *p : ballast_) free(p);
    for (void *p : small_) free(p);
    allocscope_limit_set(0);
    allocscope_config("log_file:/dev/stderr");
    unlink(log_path_.c_str());
  }

  // Fills the budget so that a 1 MiB allocation fails but the test's own small ones (gtest
  // messages, reading the log) still fit: 1 MiB blocks until one is refused, then 64 KiB
  // blocks until one is refused, then 256 KiB of those given back.
  void fill_budget() {
    auto fill = [this](size_t size) {
      while (void *p = allocscope_alloc(size, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN)) {
        memset(p, 1, 4096);
        (size == kMiB ? ballast_ : small_).push_back(p);
      }
    };
    fill(kMiB);
    fill(64 << 10);
    ASSERT_GE(ballast_.size(), 4u);
    ASSERT_GE(small_.size(), 4u);
    for (int i = 0; i < 4; ++i) {
      free(small_.back());
      small_.pop_back();
    }
  }

  void *take_ballast() {
    void *p = ballast_.back();
    ballast_.pop_back();
    return p;
  }

  int add_reclaimer(Reclaimable *r, unsigned klass = 0) {
    int id = allocscope_reclaimer_add("test", klass, Reclaimable::reclaim, r);
    EXPECT_GT(id, 0);
    reclaimers_.push_back(id);
    return id;
  }

  std::string log() const { return test_support::read_file(log_path_); }
  static int count(const std::string &text, const std::string &what) {
    return test_support::count_of(text, what);
  }

  std::string log_path_;
  std::vector<void *> ballast_;  // 1 MiB blocks
  std::vector<void *> small_;    // 64 KiB blocks
  std::vector<int> reclaimers_;
};

TEST_F(Policy, NowaitFailsFastWithoutReclaim) {
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

TEST_F(Policy, NowarnSilencesTheReport) {
  fill_budget();
  EXPECT_EQ(allocscope_alloc(kMiB, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN), nullptr);
  EXPECT_EQ(log().find("failed"), std::string::npos) << log();
}

TEST_F(Policy, NoretryAndNormalRunExactlyOnePass) {
  Reclaimable r;
  add_reclaimer(&r);
  fill_budget();
  EXPECT_EQ(allocscope_alloc(kMiB, ALLOCSCOPE_NORETRY), nullptr);
  EXPECT_EQ(r.calls.load(), 1);
  EXPECT_EQ(malloc(kMiB), nullptr) << "normal behaves as NORETRY";
  EXPECT_EQ(r.calls.load(), 2);
}

TEST_F(Policy, NoretrySucceedsWhenItsOnePassFreesEnough) {
  Reclaimable r;
  add_reclaimer(&r);
  fill_budget();
  r.blocks.push_back(take_ballast());
  void *p = allocscope_alloc(kMiB, ALLOCSCOPE_NORETRY);
  EXPECT_NE(p, nullptr);
  EXPECT_EQ(r.calls.load(), 1);
  free(p);
}

TEST_F(Policy, RetryMayfailGivesUpAfterRetryMaxPassesWithoutProgress) {
  Reclaimable r;
  add_reclaimer(&r);
  fill_budget();
  errno = 0;
  EXPECT_EQ(allocscope_alloc(kMiB, ALLOCSCOPE_RETRY_MAYFAIL), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_EQ(r.calls.load(), 3) << "retry_max:3";
}

TEST_F(Policy, RetryMayfailSucceedsWhenAReclaimerFreesEnough) {
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

TEST_F(Policy, ReclaimerOfAnExcludedClassIsSkipped) {
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

TEST_F(Policy, AllocationInsideAReclaimerNeverRecursesAndMayUseTheEmergencyAllowance) {
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

TEST_F(Policy, NofailBlocksUntilAnotherThreadFrees) {
  fill_budget();
  std::atomic<bool> freed{false};
  void *to_free = take_ballast();
  void *second = take_ballast();
  std::thread helper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    freed = true;
    free(to_free);
    free(second);
  });
  const auto start = Clock::now();
  void *p = allocscope_alloc(kMiB, ALLOCSCOPE_NOFAIL);
  const int64_t waited = ms_since(start);
  EXPECT_NE(p, nullptr);
  EXPECT_TRUE(freed.load()) << "returned before the other thread freed anything";
  EXPECT_GE(waited, 250);
  EXPECT_LT(waited, 5000);
  helper.join();
  free(p);
}

TEST_F(Policy, NofailReportsItsStallsWithABacktrace) {
  ASSERT_EQ(allocscope_config("stall_warn_ms:100"), 0);
  fill_budget();
  void *to_free = take_ballast();
  std::thread helper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(450));
    free(to_free);
  });
  void *p = allocscope_alloc(kMiB, ALLOCSCOPE_NOFAIL);
  helper.join();
  EXPECT_NE(p, nullptr);
  free(p);
  const std::string text = log();
  EXPECT_GE(count(text, "allocscope_alloc(1048576): NOFAIL stalled for "), 2) << text;
  EXPECT_NE(text.find("memory limit reached); thread "), std::string::npos) << text;
  EXPECT_NE(text.find("; at policy_test+0x"), std::string::npos) << text;
  allocscope_config("stall_warn_ms:0");
}

TEST_F(Policy, NofailScopeMakesOperatorNewWaitNotThrow) {
  fill_budget();
  void *to_free = take_ballast();
  std::thread helper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    free(to_free);
  });
  char *p = nullptr;
  {
    allocscope::Scope nofail(ALLOCSCOPE_NOFAIL);
    EXPECT_NO_THROW(p = new char[kMiB / 2]);
  }
  EXPECT_NE(p, nullptr);
  helper.join();
  delete[] p;
}

TEST_F(Policy, NowaitScopeMakesOperatorNewThrow) {
  fill_budget();
  allocscope::Scope nowait(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  // The pointers escape into volatiles, or the compiler may elide the new/delete pair.
  char *volatile p = nullptr;
  EXPECT_THROW(p = new char[kMiB], std::bad_alloc);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(p = new (std::nothrow) char[kMiB], nullptr);
}

TEST_F(Policy, AThrowingOperatorNewIsReportedOnce) {
  std::vector<void *> crumbs;  // after the ballast: nothing at all left, not even for an exception
  crumbs.reserve(100000);
  fill_budget();
  while (void *p = allocscope_alloc(64, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN)) crumbs.push_back(p);
  {
    allocscope::Scope nowait(ALLOCSCOPE_NOWAIT);
    char *volatile p = nullptr;
    EXPECT_THROW(p = new char[kMiB], std::bad_alloc);
    EXPECT_EQ(p, nullptr);
  }
  for (void *p : crumbs) free(p);
  const std::string text = log();
  EXPECT_EQ(count(text, "operator new(1048576) failed"), 1) << text;
  EXPECT_EQ(count(text, " failed: "), 1) << "the exception object's allocation is not a "
                                            "failure of its own: " << text;
}

std::vector<void *> *g_handler_ballast;
int g_handler_calls;
void free_ballast_handler() {
  ++g_handler_calls;
  for (void *p : *g_handler_ballast) free(p);
  g_handler_ballast->clear();
  std::set_new_handler(nullptr);
}

TEST_F(Policy, OperatorNewCallsTheNewHandlerWhichCanFreeMemory) {
  fill_budget();
  std::vector<void *> spare = {take_ballast(), take_ballast()};
  g_handler_ballast = &spare;
  g_handler_calls = 0;
  std::set_new_handler(free_ballast_handler);
  allocscope::Scope nowait(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  char *volatile p = nullptr;
  EXPECT_NO_THROW(p = new char[kMiB]);
  EXPECT_NE(p, nullptr);
  EXPECT_EQ(g_handler_calls, 1);
  delete[] p;
}

TEST_F(Policy, CallSiteNofailInANowaitScopeIsReportedOncePerSiteAndWaits) {
  allocscope::Scope nowait(ALLOCSCOPE_NOWAIT);
  for (int i = 0; i < 3; ++i) {
    void *p = allocscope_alloc(100, ALLOCSCOPE_NOFAIL);  // one call site, three calls
    EXPECT_NE(p, nullptr);
    free(p);
  }
  EXPECT_EQ(count(log(), "call-site NOFAIL inside a NOWAIT scope"), 1) << log();
  ASSERT_EQ(allocscope_config("nofail_in_nowait:fail"), 0);
  fill_budget();
  EXPECT_EQ(allocscope_alloc(kMiB, ALLOCSCOPE_NOFAIL | ALLOCSCOPE_NOWARN), nullptr)
      << "nofail_in_nowait:fail turns it into NOWAIT";
}

TEST_F(Policy, ScopesNestAndRestoreExactlyWhatTheySet) {
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

TEST_F(Policy, NewThreadsStartWithNoScope) {
  allocscope::Scope nowait(ALLOCSCOPE_NOWAIT);
  allocscope_flags_t seen = ~0u;
  std::thread([&] { seen = allocscope_current(); }).join();
  EXPECT_EQ(seen, 0u);
}

TEST_F(Policy, OutOfOrderRestoreIsReported) {
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

TEST(PolicyDeathTest, StrictMakesAnOutOfOrderRestoreFatal) {
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

TEST_F(Policy, ChargedFollowsAllocationsAndFrees) {
  const size_t before = allocscope_charged();
  void *p = malloc(3 * kMiB);
  memset(p, 1, 3 * kMiB);
  const size_t during = allocscope_charged();
  EXPECT_GE(during, before + 3 * kMiB);
  EXPECT_LE(during, before + 3 * kMiB + 64 * 1024);
  free(p);
  EXPECT_LE(allocscope_charged(), before + 64 * 1024);
}

// Whether the stats JSON contains `what`. Its buffer is static: a test may read the stats
// with no room left under the limit.
bool stats_contain(const char *what) {
  static char json[1 << 16];
  allocscope_stats_json(json, sizeof(json));
  return strstr(json, what) != nullptr;
}

// Small allocations are plain jemalloc calls while the limit is far (policy/budget.h):
// jemalloc's activity callback must still stop them at the limit, not past it. 1 KiB is a
// size class, so the charge is exactly what the loop allocated; this process has one
// thread, so the limit comes near (and every allocation is checked) only 96 KiB before
// it: a callback later than every 64 KiB could let the loop run past the limit. Whether
// it does depends on where the last callback falls, so four limits 16 KiB apart.
TEST_F(Policy, SmallAllocationsStopAtTheLimitNotPastIt) {
  std::vector<void *> blocks;
  blocks.reserve(8192);
  for (size_t shift = 0; shift < 64 * 1024; shift += 16 * 1024) {
    const size_t limit = allocscope_charged() + 4 * kMiB + shift;
    ASSERT_EQ(allocscope_limit_set(limit), 0);
    EXPECT_FALSE(stats_contain("limit_near"));
    void *p;
    errno = 0;
    while (blocks.size() < blocks.capacity() && (p = malloc(1024)) != nullptr)
      blocks.push_back(p);
    // Read everything before gtest allocates (which fails here), check after the frees.
    const int error = errno;
    const bool failed = blocks.size() < blocks.capacity();
    const size_t charged = allocscope_charged();
    const bool near = stats_contain("limit_near");
    const bool counted = !stats_contain("\"near\":0,");
    for (void *q : blocks) free(q);
    blocks.clear();
    ASSERT_TRUE(failed) << "no allocation failed";
    EXPECT_EQ(error, ENOMEM);
    EXPECT_LE(charged, limit) << "past the limit, shift " << shift;
    EXPECT_GT(charged + 64 * 1024, limit) << "failed well before the limit";
    EXPECT_TRUE(near) << "the limit came near";
    EXPECT_TRUE(counted) << "and that was counted";
    // Freeing 64 KiB and more calls the callback again: the limit is far again.
    EXPECT_FALSE(stats_contain("limit_near"));
  }
  void *after = malloc(1024);
  EXPECT_NE(after, nullptr);
  free(after);
}

// Every known thread may allocate up to 96 KiB unchecked, so the room a far limit needs
// grows with the threads: 48 idle threads bring a limit 4 MiB away near, and their exit
// takes it far again.
TEST_F(Policy, ThreadsThatStartAndExitMoveTheLimitNearAndFar) {
  ASSERT_EQ(allocscope_limit_set(allocscope_charged() + 4 * kMiB), 0);
  EXPECT_FALSE(stats_contain("limit_near"));
  std::atomic<bool> go{false};
  std::atomic<int> running{0};  // a thread has joined the budget before its body runs
  std::vector<std::thread> idle;
  for (int i = 0; i < 48; ++i)
    idle.emplace_back([&go, &running] {
      ++running;
      while (!go.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  while (running.load() < 48) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_TRUE(stats_contain("limit_near")) << "48 x 96 KiB do not fit in 4 MiB";
  go = true;
  for (std::thread &t : idle) t.join();
  EXPECT_FALSE(stats_contain("limit_near")) << "the threads left";
}

// A thread that frees what another allocated, and allocates nothing itself, must bring
// the charge down: the preload makes every thread known to the budget when it starts.
// Here the thread starts with no limit set and the limit comes while it waits.
TEST_F(Policy, AThreadThatOnlyFreesIsCounted) {
  allocscope_limit_set(0);
  std::atomic<bool> go{false};
  std::vector<void *> blocks(256);
  std::thread freer([&] {
    while (!go.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    for (void *p : blocks) free(p);
  });
  ASSERT_EQ(allocscope_limit_set(allocscope_charged() + 8 * kMiB), 0);
  const size_t before = allocscope_charged();
  for (void *&p : blocks) p = malloc(16 << 10);
  EXPECT_GE(allocscope_charged() + 4096, before + 256 * (16 << 10));
  go = true;
  freer.join();
  EXPECT_LE(allocscope_charged(), before + 64 * 1024);
}

// pthread_create allocates what its new thread starts from (thread_start.cc): when that
// fails it returns EAGAIN, as glibc does when it lacks memory, and creates no thread.
TEST_F(Policy, PthreadCreateFailsWithEagainWhenItsAllocationFails) {
  static std::atomic<int> started{0};
  auto body = [](void *) -> void * {
    ++started;
    return nullptr;
  };
  pthread_t thread;
  ASSERT_EQ(allocscope_fail_nth(1), 0);
  EXPECT_EQ(pthread_create(&thread, nullptr, body, nullptr), EAGAIN);
  EXPECT_EQ(allocscope_fail_nth_left(), 0u) << "the injected failure happened";
  ASSERT_EQ(pthread_create(&thread, nullptr, body, nullptr), 0);
  pthread_join(thread, nullptr);
  EXPECT_EQ(started.load(), 1);
}

TEST_F(Policy, SizeCapsFailEvenNofail) {
  errno = 0;
  volatile size_t huge = static_cast<size_t>(PTRDIFF_MAX) + 1;
  EXPECT_EQ(allocscope_alloc(huge, ALLOCSCOPE_NOFAIL), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  volatile size_t half = SIZE_MAX / 2;
  EXPECT_EQ(allocscope_calloc(half, 3, ALLOCSCOPE_NOFAIL), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_NE(log().find("size above max_size"), std::string::npos) << log();
}

TEST_F(Policy, NofailAboveNofailMaxIsDemoted) {
  ASSERT_EQ(allocscope_config("nofail_max:1M"), 0);
  fill_budget();
  EXPECT_EQ(allocscope_alloc(2 * kMiB, ALLOCSCOPE_NOFAIL | ALLOCSCOPE_NOWARN), nullptr);
  EXPECT_NE(log().find("NOFAIL above nofail_max 1048576, demoted to retry_mayfail"),
            std::string::npos)
      << log();
  allocscope_config("nofail_max:2147483647");
}

// Another thread exists (it could free memory), so NOFAIL waits before it overdraws. (With
// no other thread it overdraws at once: preload_robustness_test.)
TEST_F(Policy, NofailOverdrawsTheLimitAfterNofailOverdrawMs) {
  ASSERT_EQ(allocscope_config("nofail_overdraw_ms:200"), 0);
  fill_budget();
  std::atomic<bool> done{false};
  std::thread other([&done] {
    while (!done.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  });
  const auto start = Clock::now();
  void *p = allocscope_alloc(kMiB, ALLOCSCOPE_NOFAIL);
  EXPECT_NE(p, nullptr);
  EXPECT_GE(ms_since(start), 150);
  EXPECT_NE(log().find("overdrawing it"), std::string::npos) << log();
  done = true;
  other.join();
  free(p);
  allocscope_config("nofail_overdraw_ms:0");
}

TEST_F(Policy, RulesGiveScopeFlagsByCallerModule) {
  Reclaimable r;
  add_reclaimer(&r);
  fill_budget();
  ASSERT_EQ(allocscope_config("rules:libnothing=nofail/policy_test=nowait|nowarn"), 0);
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

TEST_F(Policy, ReclaimerRemoveAndBadArguments) {
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
