// known_test: the known-failures file (--known): ids one a line with '#' comments, a
// line that is not an id refused with its number, and which failing points are new.
#include "known.h"

#include <gtest/gtest.h>

#include <fstream>

#include "temp_dir.h"

namespace allocscope::cmd {
namespace {

std::string Write(const TempDir &dir, const std::string &text) {
  const std::string path = dir.path() + "/known";
  std::ofstream(path) << text;
  return path;
}

TEST(ReadKnown, IdsWithComments) {
  TempDir dir;
  absl::StatusOr<absl::flat_hash_set<std::string>> ids =
      ReadKnown(Write(dir, "# header\nnth-7  # crash at x.c:3\n\n  callsite-00ff \n"));
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(*ids, (absl::flat_hash_set<std::string>{"nth-7", "callsite-00ff"}));
}

TEST(ReadKnown, ALineThatIsNotAnIdIsRefusedWithItsNumber) {
  TempDir dir;
  const std::string path = Write(dir, "nth-1\nnth-2 nth-3\n");
  absl::StatusOr<absl::flat_hash_set<std::string>> ids = ReadKnown(path);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().message(),
            "--known " + path + ":2: 'nth-2 nth-3' is not a point id (one id a line, as "
            "--write-known writes them)");
  EXPECT_FALSE(ReadKnown(dir.path() + "/absent").ok());
}

TEST(NewFailures, FailingPointsNotKnown) {
  absl::StatusOr<Json> report = ParseJson(R"({"command":["x"],"mode":"nth","points":[
    {"id":"nth-1","outcome":"crash"},{"id":"nth-2","outcome":"handled"},
    {"id":"nth-3","outcome":"hang"},{"id":"nth-4","outcome":"leak"},
    {"id":"nth-5","outcome":"wrong-output"},{"id":"nth-6","outcome":"oom-exit"}]})");
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(NewFailures(*report, {}),
            (std::vector<std::string>{"nth-1", "nth-3", "nth-4", "nth-5"}));
  EXPECT_EQ(NewFailures(*report, {"nth-1", "nth-4"}),
            (std::vector<std::string>{"nth-3", "nth-5"}));
  const std::string text = KnownText(*report);
  EXPECT_NE(text.find("\nnth-1  # crash"), std::string::npos) << text;
  EXPECT_EQ(text.find("nth-2"), std::string::npos) << text;
}

}  // namespace
}  // namespace allocscope::cmd
