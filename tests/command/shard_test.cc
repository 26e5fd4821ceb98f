// shard_test: --shard's parser and split, and --sample's draw: every point in exactly one
// shard, the same draw for the same seed, and the stable ids they are keyed on.
#include "shard.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "sweep_report.h"

namespace allocscope::cmd {
namespace {

TEST(ShardFlag, TakesKOfN) {
  ShardSpec s;
  std::string error;
  ASSERT_TRUE(AbslParseFlag("2/3", &s, &error));
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 3);
  for (const char *bad : {"0/2", "3/2", "1/0", "1", "a/b", "1/2/3", "-1/2", ""}) {
    EXPECT_FALSE(AbslParseFlag(bad, &s, &error)) << bad;
    EXPECT_EQ(error, "expected K/N with 1 <= K <= N, e.g. 1/4");
  }
}

TEST(InShard, EveryIdIsInExactlyOneShard) {
  for (int n = 1; n <= 5; ++n) {
    int sizes[6] = {};
    for (int i = 1; i <= 1000; ++i) {
      const std::string id = absl::StrCat("nth-", i);
      int in = 0;
      for (int k = 1; k <= n; ++k)
        if (InShard(id, {k, n})) {
          ++in;
          ++sizes[k];
        }
      EXPECT_EQ(in, 1) << id << " in " << in << " of " << n << " shards";
    }
    // Roughly even: no shard gets less than half its share of 1000 points.
    for (int k = 1; k <= n; ++k) EXPECT_GT(sizes[k], 1000 / n / 2) << k << "/" << n;
  }
}

TEST(SampleIndices, TheSameSeedDrawsTheSamePoints) {
  const std::vector<int64_t> a = SampleIndices(100, 10, 7), b = SampleIndices(100, 10, 7);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, SampleIndices(100, 10, 8));
  ASSERT_EQ(a.size(), 10u);
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 10u);  // without replacement
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  for (const int64_t i : a) EXPECT_TRUE(i >= 0 && i < 100);
  EXPECT_EQ(SampleIndices(3, 10, 1), (std::vector<int64_t>{0, 1, 2}));  // all of them
  EXPECT_TRUE(SampleIndices(0, 10, 1).empty());
}

TEST(PointId, ComesFromTheModeAndThePairsOnly) {
  EXPECT_EQ(PointId("nth", {"fault.nth:7"}), "nth-7");
  const std::string site = PointId("callsite", {"fault.callsite:a+0x10", "fault.times:1"});
  EXPECT_EQ(site, PointId("callsite", {"fault.callsite:a+0x10", "fault.times:1"}));
  EXPECT_EQ(site.size(), std::string("callsite-").size() + 16);
  EXPECT_NE(site, PointId("callsite", {"fault.callsite:a+0x11", "fault.times:1"}));
  // The pairs are kept apart: "ab","c" is not "a","bc".
  EXPECT_NE(PointId("stack", {"ab", "c"}), PointId("stack", {"a", "bc"}));
}

}  // namespace
}  // namespace allocscope::cmd
