// quote_test: ShellQuote's words read back by a real shell as the argument they came from.
#include "quote.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "subprocess.h"

namespace allocscope::cmd {
namespace {

TEST(ShellQuote, PlainWordsStayAsTheyAre) {
  EXPECT_EQ(ShellQuote("sweep_target"), "sweep_target");
  EXPECT_EQ(ShellQuote("/usr/bin/python3.11"), "/usr/bin/python3.11");
  EXPECT_EQ(ShellQuote("fault.callsite:libc.so.6+0x9e9a9"), "fault.callsite:libc.so.6+0x9e9a9");
  EXPECT_EQ(ShellQuote("--max-points"), "--max-points");
}

TEST(ShellQuote, EverythingElseIsSingleQuoted) {
  EXPECT_EQ(ShellQuote(""), "''");
  EXPECT_EQ(ShellQuote("a b"), "'a b'");
  EXPECT_EQ(ShellQuote("it's"), "'it'\"'\"'s'");
  EXPECT_EQ(ShellQuote("$HOME"), "'$HOME'");
  EXPECT_EQ(ShellQuote("FOO=bar"), "'FOO=bar'");  // first on a line: an assignment
  EXPECT_EQ(ShellQuote("~"), "'~'");
  EXPECT_EQ(ShellQuote("*.c"), "'*.c'");
}

TEST(ShellJoin, JoinsQuotedWords) {
  EXPECT_EQ(ShellJoin({"python3", "-c", "print('hi')"}), "python3 -c 'print('\"'\"'hi'\"'\"')'");
  EXPECT_EQ(ShellJoin({}), "");
}

// Every argument, quoted into a command line for /bin/sh, reaches the program unchanged.
TEST(ShellJoin, ShellReadsBackEveryArgument) {
  const std::vector<std::string> args = {
      "plain",     "",    "two words", "it's",  "\"double\"",  "$HOME", "`id`",
      "$(id)",     "a|b", "a;b",       "a&b",   "<in",         ">out",  "*",
      "?",         "[x]", "~",         "~root", "FOO=bar",     "\\n",   "tab\there",
      "new\nline", "!",   "#comment",  "{a,b}", "caf\xc3\xa9", "'",     "''"};
  // printf prints each argument between markers; the line is built by ShellJoin.
  std::vector<std::string> line = {"printf", "<%s>"};
  line.insert(line.end(), args.begin(), args.end());
  absl::StatusOr<std::string> out =
      CaptureOutput({"/bin/sh", "-c", ShellJoin(line)}, absl::Seconds(30));
  ASSERT_TRUE(out.ok()) << out.status();
  std::string expected;
  for (const std::string &a : args) expected += "<" + a + ">";
  EXPECT_EQ(*out, expected);
}

}  // namespace
}  // namespace allocscope::cmd
