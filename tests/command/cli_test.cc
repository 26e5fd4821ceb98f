// cli_test: a verb's command line read through absl's flag registry: its flags in every
// spelling, where CMD starts, and one clear error for each kind of bad argument.
#include "cli.h"

#include <gtest/gtest.h>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "flag_types.h"
#include "help.h"

ABSL_FLAG(std::string, test_name, "", "a name");
ABSL_FLAG(bool, test_keep, false, "keep it");
ABSL_FLAG(allocscope::cmd::PositiveCount, test_count, {2}, "how many");
ABSL_FLAG(std::optional<allocscope::cmd::PositiveCount>, test_max, std::nullopt, "at most");
ABSL_FLAG(allocscope::cmd::Seconds, test_wait, {absl::Seconds(30)}, "how long");
ABSL_FLAG(std::string, test_other, "", "a flag of another verb");

namespace allocscope::cmd {
namespace {

const Verb kVerb = {"try",
                    "try the parser",
                    "[--test-name NAME] -- CMD [ARGS...]",
                    "What it does.\n  an example line",
                    {{"test-name", "NAME"},
                     {"test-keep", ""},
                     {"test-count", "N"},
                     {"test-max", "N"},
                     {"test-wait", "S"}},
                    true,
                    nullptr};

const Verb kNoCommand = {"bare", "takes no command", "", "Nothing.", {}, false, nullptr};

class ParseVerbArgsTest : public testing::Test {
 protected:
  absl::FlagSaver saver_;  // each test starts from the defaults
};

TEST_F(ParseVerbArgsTest, EverySpellingOfAFlag) {
  absl::StatusOr<ParsedArgs> p =
      ParseVerbArgs(kVerb, {"--test-name", "a", "--test_count=5", "--test-keep", "--test-max=3",
                            "--test-wait", "0.5", "--", "cmd", "--test-name", "x"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(absl::GetFlag(FLAGS_test_name), "a");
  EXPECT_EQ(absl::GetFlag(FLAGS_test_count).value, 5);
  EXPECT_TRUE(absl::GetFlag(FLAGS_test_keep));
  EXPECT_EQ(absl::GetFlag(FLAGS_test_max)->value, 3);
  EXPECT_EQ(absl::GetFlag(FLAGS_test_wait).value, absl::Milliseconds(500));
  EXPECT_EQ(p->command, (std::vector<std::string>{"cmd", "--test-name", "x"}));
  EXPECT_FALSE(p->help);
}

TEST_F(ParseVerbArgsTest, TheFirstArgumentThatIsNotAFlagStartsTheCommand) {
  absl::StatusOr<ParsedArgs> p = ParseVerbArgs(kVerb, {"--test-keep=false", "ls", "-l", "--", "x"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(absl::GetFlag(FLAGS_test_keep));
  EXPECT_EQ(p->command, (std::vector<std::string>{"ls", "-l", "--", "x"}));
  p = ParseVerbArgs(kVerb, {"-", "x"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->command, (std::vector<std::string>{"-", "x"}));
}

TEST_F(ParseVerbArgsTest, Help) {
  absl::StatusOr<ParsedArgs> p = ParseVerbArgs(kVerb, {"--help"});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->help);
  p = ParseVerbArgs(kVerb, {"-h"});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->help);
  p = ParseVerbArgs(kVerb, {"--", "cmd", "--help"});  // CMD's own
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->help);
}

TEST_F(ParseVerbArgsTest, BadArgumentsAreOneClearError) {
  const struct {
    std::vector<std::string> args;
    const char *message;
  } cases[] = {
      {{"--nope"}, "unknown flag --nope (allocscope help try)"},
      {{"--test-other", "x"}, "unknown flag --test-other (allocscope help try)"},
      {{"-x"}, "unknown flag -x (flags are spelled --name) (allocscope help try)"},
      {{"--test-name"}, "--test-name needs a value: --test-name NAME"},
      {{"--test-count", "0"},
       "Illegal value '0' specified for flag 'test_count'; expected a whole number from 1"},
      {{"--test-count=lots"},
       "Illegal value 'lots' specified for flag 'test_count'; expected a whole number from 1"},
      {{"--test-wait", "-1"},
       "Illegal value '-1' specified for flag 'test_wait'; expected a positive number of "
       "seconds, e.g. 30 or 0.5"},
      {{"--test-keep=maybe"}, "Illegal value 'maybe' specified for flag 'test_keep'"},
  };
  for (const auto &c : cases) {
    absl::StatusOr<ParsedArgs> p = ParseVerbArgs(kVerb, c.args);
    ASSERT_FALSE(p.ok()) << c.args[0];
    EXPECT_EQ(p.status().message(), c.message);
  }
  absl::StatusOr<ParsedArgs> p = ParseVerbArgs(kNoCommand, {"extra"});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "unexpected argument 'extra' (allocscope help bare)");
}

TEST(CheckVerbFlags, EveryFlagMustBeDefined) {
  EXPECT_TRUE(CheckVerbFlags(kVerb).ok());
  const Verb bad = {"bad", "", "", "", {{"not-defined", "X"}}, false, nullptr};
  EXPECT_FALSE(CheckVerbFlags(bad).ok());
}

TEST(Help, VerbHelpShowsUsageDescriptionAndFlags) {
  const std::string help = VerbHelp(kVerb);
  EXPECT_EQ(help.rfind("allocscope try - try the parser\n\n", 0), 0u) << help;
  EXPECT_NE(help.find("Usage: allocscope try [--test-name NAME] -- CMD [ARGS...]"),
            std::string::npos);
  EXPECT_NE(help.find("What it does."), std::string::npos);
  EXPECT_NE(help.find("--test-count N"), std::string::npos);
  EXPECT_NE(help.find("how many (default 2)"), std::string::npos);
  EXPECT_NE(help.find("--test-keep "), std::string::npos);
  EXPECT_EQ(help.find("(default false)"), std::string::npos);
  for (size_t start = 0, end; start < help.size(); start = end + 1) {
    end = help.find('\n', start);
    EXPECT_LE(end - start, 80u) << help.substr(start, end - start);
  }
}

TEST(Help, ManPageIsRoffOfTheSameText) {
  const Verb *verbs[] = {&kVerb};
  const std::string man = ManPage(verbs, "9.9");
  EXPECT_EQ(man.rfind(".TH ALLOCSCOPE 1", 0), 0u);
  EXPECT_NE(man.find("allocscope 9.9"), std::string::npos);
  EXPECT_NE(man.find(".SS \"allocscope try\"\ntry the parser:\n.br\n"
                     "allocscope try [\\-\\-test\\-name NAME] \\-\\- CMD [ARGS...]\n"),
            std::string::npos)
      << man;
  EXPECT_NE(man.find("What it does."), std::string::npos);
  EXPECT_NE(man.find(".nf\n  an example line\n.fi"), std::string::npos) << man;
  EXPECT_NE(man.find(".TP\n.B \\-\\-test\\-count N\nhow many (default 2)"), std::string::npos);
  EXPECT_NE(man.find(".SH \"EXIT STATUS\""), std::string::npos);
  // Nothing a roff reader would take for a request by mistake.
  for (size_t start = 0, end; start < man.size(); start = end + 1) {
    end = man.find('\n', start);
    const std::string line = man.substr(start, end - start);
    if (!line.empty() && (line[0] == '.' || line[0] == '\'')) {
      EXPECT_TRUE(line.rfind(".TH", 0) == 0 || line.rfind(".SH", 0) == 0 ||
                  line.rfind(".SS", 0) == 0 || line == ".PP" || line == ".TP" || line == ".nf" ||
                  line == ".fi" || line == ".br" || line.rfind(".B ", 0) == 0)
          << line;
    }
  }
}

}  // namespace
}  // namespace allocscope::cmd
