// stats_summary_test.cc: the peak (budget.h), failures by call site (failure_sites.h), the
// stats JSON's new fields and the summary (stats_summary.h), on the engine linked directly.
#include "stats_summary.h"

#include <stdlib.h>
#include <string.h>

#include <string>

#include <gtest/gtest.h>

#include "backend.h"
#include "budget.h"
#include "control.h"
#include "engine.h"
#include "engine_support.h"
#include "failure_sites.h"
#include "stats_json.h"

namespace allocscope {
namespace {

std::string summary(int signal = 0) {
  char buf[4096];
  const int n = stats_summary(buf, sizeof(buf), signal);
  EXPECT_GT(n, 0);
  EXPECT_LT(static_cast<size_t>(n), sizeof(buf));
  return buf;
}

std::string json(int signal = 0) {
  char buf[12288];
  const int n = stats_json(buf, sizeof(buf), signal);
  EXPECT_GT(n, 0);
  return buf;
}

TEST(FormatSize, UnitsAndTenths) {
  char buf[32];
  EXPECT_STREQ(format_size(0, buf, sizeof(buf)), "0 B");
  EXPECT_STREQ(format_size(1023, buf, sizeof(buf)), "1023 B");
  EXPECT_STREQ(format_size(1536, buf, sizeof(buf)), "1.5 KiB");
  EXPECT_STREQ(format_size(64 << 20, buf, sizeof(buf)), "64.0 MiB");
  EXPECT_STREQ(format_size(size_t{3} << 30, buf, sizeof(buf)), "3.0 GiB");
}

// Sites are counted apart, by policy, and listed most first.
TEST(FailureSites, TopSitesMostFirst) {
  int a = 0, b = 0;  // two distinct addresses in this program
  for (int i = 0; i < 3; ++i) failure_sites::record(&a, Contract::kNormal);
  for (int i = 0; i < 5; ++i) failure_sites::record(&b, Contract::kNofail);
  failure_sites::record(&b, Contract::kNormal);
  const failure_sites::Site *top[failure_sites::kTop];
  uint64_t other;
  ASSERT_GE(failure_sites::top(top, &other), 2);
  EXPECT_EQ(top[0]->addr.load(), reinterpret_cast<uintptr_t>(&b));
  EXPECT_EQ(failure_sites::total(*top[0]), 6u);
  EXPECT_EQ(top[0]->failures[static_cast<int>(Contract::kNofail)].load(), 5u);
  EXPECT_EQ(top[1]->addr.load(), reinterpret_cast<uintptr_t>(&a));
  EXPECT_EQ(other, 0u);
  EXPECT_NE(json().find("\"failures\":6,\"normal\":1,\"nofail\":5}"), std::string::npos) << json();
}

// The peak follows the charge up, not down, and the JSON and summary show it.
TEST(Peak, RisesWithTheChargeAndStays) {
  engine_support::start_engine();
  ASSERT_EQ(apply_config("limit:1G", "test"), 0);
  const size_t before = budget::peak().bytes;
  // Through the engine, as the preload's malloc would: it charges them, and an exact sum
  // or the activity callback takes the peak.
  void *big = allocate(Request("malloc", 8 << 20, nullptr));
  ASSERT_NE(big, nullptr);
  void *more = allocate(Request("malloc", 8 << 20, nullptr));
  ASSERT_NE(more, nullptr);
  const budget::Peak peak = budget::peak();
  EXPECT_GE(peak.bytes, before);
  EXPECT_GE(peak.bytes, size_t{8} << 20);
  EXPECT_NE(peak.at_ns, 0u);
  je_free(big);
  je_free(more);
  EXPECT_EQ(budget::peak().bytes, peak.bytes) << "a peak does not come down";
  const std::string j = json();
  EXPECT_NE(j.find("\"peak\":"), std::string::npos);
  EXPECT_NE(j.find("\"rss\":{\"now\":"), std::string::npos);
  const std::string s = summary();
  EXPECT_NE(s.find("limit     1.0 GiB"), std::string::npos) << s;
  EXPECT_NE(s.find("of the limit) at "), std::string::npos) << s;
  ASSERT_EQ(apply_config("limit:0", "test"), 0);
}

// From a signal handler: no locked sections, the signal named.
TEST(Signal, JsonLeavesOutLockedSectionsAndNamesTheSignal) {
  const std::string j = json(SIGTERM);
  EXPECT_NE(j.find("\"signal\":\"SIGTERM\""), std::string::npos);
  EXPECT_EQ(j.find("\"heap\""), std::string::npos);
  EXPECT_EQ(j.find("\"reserves\""), std::string::npos);
  EXPECT_EQ(j.back(), '}');
  EXPECT_NE(summary(SIGHUP).find("stopped   by SIGHUP"), std::string::npos);
}

}  // namespace
}  // namespace allocscope
