// preload_fault_test.cc: fault injection under the preload. Each attribute must fail exactly the
// allocations it selects: counted over a fixed sequence of allocations, deterministic
// with fault.seed. Every test starts from fault.reset:true.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fstream>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "allocscope.h"
#include "preload_support.h"

namespace {

// The size the tests allocate, and the only size the fixture lets fail
// (fault.size_min/size_max): gtest's and the standard library's own allocations stay
// out of the counts.
constexpr size_t kSize = 777;

// Allocates `n` blocks of `size` from one call site; returns which ones failed (1-based).
// It allocates nothing else while it runs. noinline: one stable call site.
[[gnu::noinline]] std::vector<int> run(int n, size_t size = kSize, allocscope_flags_t flags = 0) {
  std::vector<int> failed;
  failed.reserve(n);
  std::vector<void *> blocks(n);
  for (int i = 1; i <= n; ++i) {
    errno = 0;
    blocks[i - 1] = allocscope_alloc(size, flags | ALLOCSCOPE_NOWARN);
    if (blocks[i - 1] == nullptr) {
      failed.push_back(i);
      EXPECT_EQ(errno, ENOMEM);
    }
  }
  for (void *p : blocks) free(p);
  return failed;
}

[[gnu::noinline]] void *other_site(size_t size) {
  return allocscope_alloc(size, ALLOCSCOPE_NOWARN);
}

std::vector<std::string> lines(const std::string &path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The value of "key":"..." in a JSON line.
std::string field(const std::string &line, const std::string &key) {
  const std::string needle = "\"" + key + "\":\"";
  const size_t at = line.find(needle);
  if (at == std::string::npos) return "";
  const size_t start = at + needle.size();
  return line.substr(start, line.find('"', start) - start);
}

class Fault : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_PRELOADED();
    ASSERT_EQ(allocscope_config("fault.reset:true,fault.size_min:777,fault.size_max:777"), 0);
    char tmpl[] = "/tmp/allocscope-fault-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override {
    allocscope_config("fault.reset:true");
    allocscope_fail_nth(0);
    system(("rm -rf " + dir_).c_str());
  }
  std::string dir_;
};

TEST_F(Fault, NothingFailsUntilConfigured) {
  EXPECT_TRUE(run(200).empty());
  ASSERT_EQ(allocscope_config("fault.probability:0"), 0);
  EXPECT_TRUE(run(200).empty()) << "probability 0 disables injection (the kernel's rule)";
}

TEST_F(Fault, ProcessNthFailsExactlyThatAllocation) {
  ASSERT_EQ(allocscope_config("fault.nth:5,fault.times:1"), 0);
  EXPECT_EQ(run(20), std::vector<int>{5});
  EXPECT_TRUE(run(20).empty()) << "it fails once";
}

TEST_F(Fault, ThreadFailNthCountsDownLikeProcFailNth) {
  ASSERT_EQ(allocscope_fail_nth(3), 0);
  EXPECT_EQ(allocscope_fail_nth_left(), 3u);
  void *a = allocscope_alloc(kSize, 0);
  EXPECT_EQ(allocscope_fail_nth_left(), 2u);
  std::vector<int> other;
  std::thread([&] { other = run(10); }).join();
  EXPECT_TRUE(other.empty()) << "another thread's countdown is its own";
  void *b = allocscope_alloc(kSize, 0);
  EXPECT_EQ(allocscope_alloc(kSize, ALLOCSCOPE_NOWARN), nullptr);
  EXPECT_EQ(allocscope_fail_nth_left(), 0u) << "0 once the failure happened";
  EXPECT_TRUE(run(10).empty());
  free(a);
  free(b);
}

TEST_F(Fault, TimesLimitsTheFailures) {
  ASSERT_EQ(allocscope_config("fault.probability:100,fault.times:3"), 0);
  EXPECT_EQ(run(10), (std::vector<int>{1, 2, 3}));
}

TEST_F(Fault, IntervalFailsEveryNth) {
  ASSERT_EQ(allocscope_config("fault.interval:4,fault.times:-1"), 0);
  EXPECT_TRUE(run(12).empty()) << "interval alone selects nothing";
  ASSERT_EQ(allocscope_config("fault.probability:100"), 0);
  EXPECT_EQ(run(12), (std::vector<int>{4, 8, 12}));
}

TEST_F(Fault, SpaceLetsBytesThroughFirst) {
  ASSERT_EQ(allocscope_config("fault.space:3000,fault.times:2,fault.probability:100"), 0);
  // 777-byte allocations: space 3000 lets three through (3000, 2223, 1446 are all more
  // than 777, and shrink by it), then 669 is not: the 4th and 5th fail.
  EXPECT_EQ(run(8), (std::vector<int>{4, 5}));
}

TEST_F(Fault, ProbabilityIsDeterministicForASeed) {
  ASSERT_EQ(allocscope_config("fault.probability:30,fault.seed:42"), 0);
  const std::vector<int> first = run(1000);
  ASSERT_EQ(allocscope_config("fault.seed:42"), 0);
  const std::vector<int> second = run(1000);
  EXPECT_EQ(first, second);
  EXPECT_GT(first.size(), 220u);
  EXPECT_LT(first.size(), 380u);
}

TEST_F(Fault, SizeRangeFiltersCandidates) {
  ASSERT_EQ(allocscope_config("fault.size_min:100,fault.size_max:200,fault.probability:100"), 0);
  // Nothing else on this thread allocates 100-200 bytes while run() runs.
  EXPECT_TRUE(run(5, 99).empty());
  EXPECT_TRUE(run(5, 201).empty());
  EXPECT_EQ(run(3, 150).size(), 3u);
}

TEST_F(Fault, NofailAndNofaultAreNeverInjected) {
  ASSERT_EQ(allocscope_config("fault.probability:100"), 0);
  EXPECT_TRUE(run(50, kSize, ALLOCSCOPE_NOFAIL).empty());
  EXPECT_TRUE(run(50, kSize, ALLOCSCOPE_NOFAULT).empty());
  allocscope_cookie_t benign = allocscope_save(ALLOCSCOPE_NOFAULT);
  void *p = malloc(kSize);
  allocscope_restore(benign);
  EXPECT_NE(p, nullptr) << "a NOFAULT scope exempts plain malloc";
  free(p);
  EXPECT_EQ(run(5).size(), 5u);
}

TEST_F(Fault, MarkedThreadsOnly) {
  ASSERT_EQ(allocscope_config("fault.threads:marked,fault.probability:100"), 0);
  EXPECT_TRUE(run(5).empty()) << "this thread is not marked";
  std::vector<int> marked;
  std::thread([&] {
    EXPECT_EQ(allocscope_fault_mark(1), 0);
    marked = run(5);
  }).join();
  EXPECT_EQ(marked.size(), 5u);
}

TEST_F(Fault, CallSiteFromTheRecordTargetsOneSite) {
  // Record the sites, then fail only run()'s.
  ASSERT_EQ(allocscope_config(("fault.record:" + dir_ + "/rec").c_str()), 0);
  run(3);
  free(other_site(kSize));
  ASSERT_EQ(allocscope_config(("fault.log:" + dir_ + "/log,fault.probability:100,fault.times:1,"
                               "fault.verbose:0")
                                  .c_str()),
            0);
  // The call site run() uses, taken from its first injected failure.
  ASSERT_EQ(run(1).size(), 1u);
  const std::vector<std::string> logged = lines(dir_ + "/log");
  ASSERT_EQ(logged.size(), 1u);
  const std::string site = field(logged[0], "callsite");
  ASSERT_EQ(site.rfind("preload_fault_test+0x", 0), 0u) << logged[0];
  ASSERT_EQ(allocscope_config(("fault.callsite:" + site + ",fault.times:-1").c_str()), 0);
  void *elsewhere = other_site(kSize);
  EXPECT_NE(elsewhere, nullptr) << "another call site is not selected";
  free(elsewhere);
  EXPECT_EQ(run(4).size(), 4u);
}

TEST_F(Fault, CallerAndRejectFilterByModule) {
  ASSERT_EQ(allocscope_config("fault.caller:libnothing,fault.probability:100"), 0);
  EXPECT_TRUE(run(5).empty());
  ASSERT_EQ(allocscope_config("fault.caller:preload_fault_test"), 0);
  EXPECT_EQ(run(5).size(), 5u);
  ASSERT_EQ(allocscope_config("fault.reject:preload_fault_test"), 0);
  EXPECT_TRUE(run(5).empty()) << "reject wins over caller";
}

// fault.stack: the hash a logged failure printed selects that stack (run() called from
// the same line: the caller's frame is part of it), not another.
TEST_F(Fault, StackFromTheLogTargetsOneStack) {
  ASSERT_EQ(allocscope_config(("fault.log:" + dir_ + "/log,fault.probability:100,fault.times:1")
                                  .c_str()),
            0);
  std::string stack;
  for (int round = 0; round < 3; ++round) {
    const std::vector<int> failed = run(3);  // one call, the same stack every round
    if (round == 0) {
      ASSERT_EQ(failed.size(), 1u);
      const std::vector<std::string> logged = lines(dir_ + "/log");
      ASSERT_EQ(logged.size(), 1u);
      stack = field(logged[0], "stack");
      ASSERT_EQ(stack.size(), 16u) << logged[0];
      ASSERT_EQ(allocscope_config("fault.reset:true,fault.size_min:777,fault.size_max:777"), 0);
      ASSERT_EQ(allocscope_config(("fault.stack:" + stack).c_str()), 0);
      void *elsewhere = other_site(kSize);
      EXPECT_NE(elsewhere, nullptr) << "another stack is not selected";
      free(elsewhere);
      EXPECT_TRUE(run(3).empty()) << "run() called from another line is another stack";
    } else if (round == 1) {
      EXPECT_EQ(failed.size(), 3u);
      ASSERT_EQ(allocscope_config("fault.stack:off,fault.probability:0"), 0);
    } else {
      EXPECT_TRUE(failed.empty());
    }
  }
}

// fault.only selects eligibility, not failures: alone it fails nothing, and fault.nth
// counts only the allocations it lets through.
TEST_F(Fault, OnlyFiltersEligibilityWithoutSelecting) {
  ASSERT_EQ(allocscope_config("fault.only:preload_fault_test"), 0);
  EXPECT_TRUE(run(5).empty()) << "fault.only alone fails nothing";
  ASSERT_EQ(allocscope_config("fault.nth:2"), 0);
  EXPECT_EQ(run(4), std::vector<int>({2}));
  ASSERT_EQ(allocscope_config("fault.only:libnothing,fault.nth:1"), 0);
  EXPECT_TRUE(run(4).empty()) << "no allocation passes through libnothing";
}

// fault.persistent: the selected failure and every later eligible allocation.
TEST_F(Fault, PersistentFailsEverythingAfterTheFirst) {
  ASSERT_EQ(allocscope_config("fault.nth:3,fault.persistent:true"), 0);
  EXPECT_EQ(run(6), std::vector<int>({3, 4, 5, 6}));
  EXPECT_EQ(run(2), std::vector<int>({1, 2}));
  ASSERT_EQ(allocscope_config("fault.reset:true,fault.size_min:777,fault.size_max:777,fault.nth:3"),
            0);
  EXPECT_EQ(run(6), std::vector<int>({3})) << "without it, one failure";
}

TEST_F(Fault, LogLinesAreJsonWithCallSiteAndBacktrace) {
  ASSERT_EQ(allocscope_config(("fault.log:" + dir_ + "/log.%p,fault.nth:2").c_str()), 0);
  EXPECT_EQ(run(3), std::vector<int>{2});
  const std::vector<std::string> logged =
      lines(dir_ + "/log." + std::to_string(getpid()));
  ASSERT_EQ(logged.size(), 1u);
  const std::string &line = logged[0];
  EXPECT_EQ(line.front(), '{');
  EXPECT_EQ(line.back(), '}');
  EXPECT_NE(line.find("\"size\":777"), std::string::npos) << line;
  EXPECT_NE(line.find("\"function\":\"allocscope_alloc\""), std::string::npos) << line;
  EXPECT_NE(field(line, "module").find("/preload_fault_test"), std::string::npos) << line;
  EXPECT_NE(line.find("\"backtrace\":[\"preload_fault_test+0x"), std::string::npos) << line;
}

TEST_F(Fault, InjectedFailureTakesOperatorNewToTheHandlerAndBadAlloc) {
  ASSERT_EQ(allocscope_config("fault.nth:1"), 0);
  char *volatile p = nullptr;
  EXPECT_THROW(p = new char[kSize], std::bad_alloc);
  EXPECT_EQ(p, nullptr);
}

TEST_F(Fault, BadKeysAreReportedAndRejected) {
  EXPECT_EQ(allocscope_config("fault.probability:101"), -EINVAL);
  EXPECT_EQ(allocscope_config("fault.bogus:1"), -EINVAL);
  EXPECT_EQ(allocscope_config("fault.callsite:nonsense"), -EINVAL);
  EXPECT_EQ(allocscope_config("fault.threads:some"), -EINVAL);
  EXPECT_TRUE(run(5).empty()) << "rejected keys arm nothing";
}

}  // namespace
