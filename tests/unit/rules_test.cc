// rules_test.cc: scope flags by caller module (rules.h): the grammar of the rules key
// (options.h's parse_rules), and rules::flags_for on real return addresses, in this
// program and in libc, with the first matching rule winning and the gate following.
#include "rules.h"

#include <stdlib.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gate.h"
#include "options.h"

namespace allocscope {
namespace {

// Parses `text`, expecting it to be good; the rules it gave.
std::vector<RuleText> rules_of(const std::string &text) {
  RuleText out[kMaxRules];
  int count = -1;
  EXPECT_TRUE(parse_rules(text, out, &count)) << text;
  return std::vector<RuleText>(out, out + (count > 0 ? count : 0));
}

TEST(ParseRules, ModulesAndFlagsInOrder) {
  const std::vector<RuleText> rules = rules_of("libsqlite3=nowait|nowarn/libfoo=nofail");
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_STREQ(rules[0].module, "libsqlite3");
  EXPECT_EQ(rules[0].flags, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  EXPECT_STREQ(rules[1].module, "libfoo");
  EXPECT_EQ(rules[1].flags, ALLOCSCOPE_NOFAIL);
  // The flags are flags.h's words, with their case and blanks rules.
  const std::vector<RuleText> one = rules_of("prog=KV | noreclaim_class(2)");
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].flags, ALLOCSCOPE_KV | ALLOCSCOPE_NORECLAIM_CLASS(2));
  EXPECT_TRUE(rules_of("none").empty());
  EXPECT_TRUE(rules_of("NONE").empty()) << "keywords take any case, as the flag words do";
}

TEST(ParseRules, SixteenRulesAtMost) {
  std::string text;
  for (int i = 0; i < kMaxRules; ++i) text += (i ? "/lib" : "lib") + std::to_string(i) + "=nowait";
  EXPECT_EQ(rules_of(text).size(), static_cast<size_t>(kMaxRules));
  RuleText out[kMaxRules + 1];
  int count = 0;
  EXPECT_FALSE(parse_rules(text + "/one_more=nowait", out, &count));
}

// A module name is a file-name prefix of at most 63 characters.
TEST(ParseRules, ModuleNamesUpTo63Characters) {
  const std::string longest(63, 'm');
  const std::vector<RuleText> rules = rules_of(longest + "=nofail");
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(std::string(rules[0].module), longest);
  RuleText out[kMaxRules];
  int count = 0;
  EXPECT_FALSE(parse_rules(std::string(64, 'm') + "=nofail", out, &count));
}

TEST(ParseRules, BadRules) {
  RuleText out[kMaxRules];
  for (const char *bad : {"", "=nofail", "libx", "libx=", "libx=bogus", "libx=nofail|bogus",
                          "libx=zero", "libx=nofail|zero", "libx=none", "libx=normal",
                          "libx=nofail/", "/libx=nofail", "libx=nofail//liby=kv",
                          "none/libx=nofail"}) {
    int count = 0;
    EXPECT_FALSE(parse_rules(bad, out, &count)) << "'" << bad << "'";
  }
}

// The return address of this function's caller.
[[gnu::noinline]] const void *return_address() { return __builtin_return_address(0); }

// A return address inside libc: qsort calls the comparator from its own code.
const void *g_from_libc;
int compare(const void *a, const void *b) {
  g_from_libc = __builtin_return_address(0);
  return *static_cast<const int *>(a) - *static_cast<const int *>(b);
}
const void *return_address_in_libc() {
  int values[] = {2, 1};
  qsort(values, 2, sizeof(int), compare);
  return g_from_libc;
}

class Rules : public ::testing::Test {
 protected:
  void TearDown() override { EXPECT_TRUE(rules::configure("none")); }
};

TEST_F(Rules, FlagsForTheCallersModule) {
  const void *here = return_address();
  const void *in_libc = return_address_in_libc();
  ASSERT_NE(in_libc, nullptr);
  EXPECT_EQ(rules::flags_for(here), 0u) << "no rules yet";
  ASSERT_TRUE(rules::configure("libc=nowait|nowarn/rules_test=nofail"));
  EXPECT_EQ(rules::flags_for(here), ALLOCSCOPE_NOFAIL);
  EXPECT_EQ(rules::flags_for(in_libc), ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  // An address in no module (the heap) matches no rule.
  void *heap = malloc(16);
  EXPECT_EQ(rules::flags_for(static_cast<char *>(heap) + 1), 0u);
  free(heap);
  ASSERT_TRUE(rules::configure("libnothing=kv"));
  EXPECT_EQ(rules::flags_for(here), 0u) << "a rule for another module";
  EXPECT_EQ(rules::flags_for(in_libc), 0u);
}

// Names are prefixes, and the first rule that matches decides.
TEST_F(Rules, TheFirstMatchingPrefixWins) {
  const void *here = return_address();
  ASSERT_TRUE(rules::configure("rules=kv/rules_test=nofail"));
  EXPECT_EQ(rules::flags_for(here), ALLOCSCOPE_KV);
  ASSERT_TRUE(rules::configure("rules_test=nofail/rules=kv"));
  EXPECT_EQ(rules::flags_for(here), ALLOCSCOPE_NOFAIL);
  ASSERT_TRUE(rules::configure("rules_test_=kv/rules_test=retry_mayfail"));
  EXPECT_EQ(rules::flags_for(here), ALLOCSCOPE_RETRY_MAYFAIL) << "longer than the name";
}

// A bad rule set changes nothing; "none" clears them.
TEST_F(Rules, BadTextKeepsThePreviousRules) {
  const void *here = return_address();
  ASSERT_TRUE(rules::configure("rules_test=nofail"));
  EXPECT_FALSE(rules::configure("rules_test=bogus"));
  EXPECT_FALSE(rules::configure("libx"));
  EXPECT_EQ(rules::flags_for(here), ALLOCSCOPE_NOFAIL);
  ASSERT_TRUE(rules::configure("none"));
  EXPECT_EQ(rules::flags_for(here), 0u);
}

// While rules are set, failures need the engine (the caller is looked up then); KV in a
// rule also engages kv for reallocs.
TEST_F(Rules, RulesEngageTheGate) {
  ASSERT_EQ(gate::bits(), 0u);
  ASSERT_TRUE(rules::configure("libx=nowarn"));
  EXPECT_EQ(gate::bits(), gate::kOnFailure);
  ASSERT_TRUE(rules::configure("libx=nowarn/liby=kv"));
  EXPECT_EQ(gate::bits(), gate::kOnFailure | gate::kKv);
  EXPECT_FALSE(rules::configure("libx=bogus"));
  EXPECT_EQ(gate::bits(), gate::kOnFailure | gate::kKv) << "a bad set publishes nothing";
  ASSERT_TRUE(rules::configure("none"));
  EXPECT_EQ(gate::bits(), 0u);
}

}  // namespace
}  // namespace allocscope
