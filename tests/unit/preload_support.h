// preload_support.h: what the tests that run under the preload share: a check that it took
// effect, its reports captured in a file, and its stats read through the C API
// (allocscope_stats_json). For the preload_*_test programs, linked with the client library.
#pragma once

#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "allocscope.h"
#include "test_support.h"

namespace preload_support {

// Every fixture's first check: without the preload the C API is the client library's
// no-ops, and every test would pass or fail for the wrong reason.
#define ASSERT_PRELOADED() \
  ASSERT_EQ(allocscope_active(), 1) << "run under LD_PRELOAD=liballocscope.so"

// The preload's reports go to a temporary file while the object lives, then back to
// stderr. start() applies log_file and `settings` (more key:value pairs, or "").
class ReportLog {
 public:
  ReportLog() = default;
  ~ReportLog() { allocscope_config("log_file:/dev/stderr"); }
  ReportLog(const ReportLog &) = delete;
  ReportLog &operator=(const ReportLog &) = delete;

  // allocscope_config's result: 0 when every pair applied.
  int start(const std::string &settings) {
    return allocscope_config(
        ("log_file:" + file_.path() + (settings.empty() ? "" : ",") + settings).c_str());
  }
  const std::string &path() const { return file_.path(); }
  std::string text() const { return file_.text(); }

 private:
  test_support::TempFile file_;
};

// The stats JSON, in a static buffer: reading it allocates nothing, so a test may read it
// with no room left under the limit, in a child that must not allocate, or while a
// failure is being injected. "" if it does not fit.
inline const char *stats_json() {
  static char json[1 << 16];
  if (allocscope_stats_json(json, sizeof(json)) >= static_cast<int>(sizeof(json))) json[0] = '\0';
  return json;
}

// A number from the stats: the first "key":N, after "section" if one is given (e.g.
// stat("exhausted", "reserves")). A key that is not there fails the test and reads as
// ~0. Allocates nothing unless it fails.
inline unsigned long long stat(const char *key, const char *section = nullptr) {
  const char *json = stats_json();
  char quoted[64];
  const char *at = json;
  if (section != nullptr) {
    snprintf(quoted, sizeof(quoted), "\"%s\"", section);
    at = strstr(json, quoted);
  }
  snprintf(quoted, sizeof(quoted), "\"%s\":", key);
  at = at != nullptr ? strstr(at, quoted) : nullptr;
  if (at == nullptr) {
    ADD_FAILURE() << "no \"" << key << "\" in the stats" << (section ? " after " : "")
                  << (section ? section : "") << ": " << json;
    return ~0ull;
  }
  return strtoull(at + strlen(quoted), nullptr, 10);
}

// Whether the stats contain `what` anywhere.
inline bool stats_contain(const char *what) { return strstr(stats_json(), what) != nullptr; }

// The gate's engaged bits as the stats name them, e.g. "limit|kv" ("?" if missing).
inline std::string engaged() {
  const char *json = stats_json();
  const char *at = strstr(json, "\"engaged\":\"");
  if (at == nullptr) return "?";
  at += strlen("\"engaged\":\"");
  return std::string(at, strchr(at, '"'));
}

inline constexpr size_t kMiB = 1 << 20;

// A limit `room` above what is charged when the test starts, ballast to fill it with, and
// reports in a file: what the tests of policies, reclaim and pools start from. The
// settings make failures quick and every report visible: retry_max:3, no stall reports,
// no emergency allowance, no rate limit on reports.
class LimitedBudgetTest : public ::testing::Test {
 protected:
  explicit LimitedBudgetTest(size_t room) : room_(room) {}

  void SetUp() override {
    ASSERT_PRELOADED();
    ASSERT_EQ(log_.start("retry_max:3,stall_warn_ms:0,nofail_in_nowait:wait,emergency:0,"
                         "strict:false,warn_burst:0"),
              0);
    ASSERT_EQ(allocscope_limit_set(allocscope_charged() + room_), 0);
  }

  void TearDown() override {
    for (void *p : ballast_) free(p);
    ballast_.clear();
    allocscope_limit_set(0);
  }

  // Allocates blocks of `size` (NOWAIT, no report) into `into` until one is refused,
  // touching a page of each so that it is really there.
  static void fill(size_t size, std::vector<void *> *into) {
    while (void *p = allocscope_alloc(size, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN)) {
      memset(p, 1, 4096);
      into->push_back(p);
    }
  }

  std::string log() const { return log_.text(); }
  static int count(const std::string &text, const std::string &what) {
    return test_support::count_of(text, what);
  }

  ReportLog log_;
  std::vector<void *> ballast_;  // freed by TearDown

 private:
  size_t room_;
};

// A reclaimer the tests register: it counts its calls and frees one block it was given
// per call.
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

// The policy tests (preload_contract, _nofail, _new, _reclaim, _scope, _limit): a limit
// 8.5 MiB above what is charged, filled so that a 1 MiB allocation fails while the test's
// own small ones (gtest messages, reading the log) still fit; each test then watches what
// one allocation does: what it returned, errno, how long it took, which reclaimers ran,
// what a waiting thread saw, and what was reported.
class PolicyTest : public LimitedBudgetTest {
 protected:
  PolicyTest() : LimitedBudgetTest(8 * kMiB + 512 * 1024) {}

  void TearDown() override {
    for (int id : reclaimers_) allocscope_reclaimer_remove(id);
    for (void *p : small_) free(p);
    small_.clear();
    LimitedBudgetTest::TearDown();
  }

  // 1 MiB blocks until one is refused, then 64 KiB blocks until one is refused, then
  // 256 KiB of those given back.
  void fill_budget() {
    fill(kMiB, &ballast_);
    fill(64 << 10, &small_);
    ASSERT_GE(ballast_.size(), 4u);
    ASSERT_GE(small_.size(), 4u);
    for (int i = 0; i < 4; ++i) {
      free(small_.back());
      small_.pop_back();
    }
  }

  // A 1 MiB block of the ballast, now the test's to free.
  void *take_ballast() {
    void *p = ballast_.back();
    ballast_.pop_back();
    return p;
  }

  int add_reclaimer(Reclaimable *r, unsigned klass = 0) {
    const int id = allocscope_reclaimer_add("test", klass, Reclaimable::reclaim, r);
    EXPECT_GT(id, 0);
    reclaimers_.push_back(id);
    return id;
  }

  std::vector<void *> small_;  // 64 KiB blocks
  std::vector<int> reclaimers_;
};

}  // namespace preload_support
