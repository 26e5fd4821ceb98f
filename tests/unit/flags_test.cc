// flags_test.cc: the flag words (flags.h) that reports print and ALLOCSCOPE_CONF's policy
// and rules take: each flag's word, format and parse as inverses, noreclaim_class(0-15),
// words that are not flags, and a report buffer too small for the words.
#include "flags.h"

#include <string.h>

#include <string>

#include <gtest/gtest.h>

namespace allocscope {
namespace {

// Every named flag and its word, as shim/allocscope.h defines them.
struct Word {
  Flags flag;
  const char *word;
};
constexpr Word kWords[] = {
    {ALLOCSCOPE_NOFAIL, "nofail"},         {ALLOCSCOPE_NOWAIT, "nowait"},
    {ALLOCSCOPE_NORETRY, "noretry"},       {ALLOCSCOPE_RETRY_MAYFAIL, "retry_mayfail"},
    {ALLOCSCOPE_NOWARN, "nowarn"},         {ALLOCSCOPE_KV, "kv"},
    {ALLOCSCOPE_NORECLAIM, "noreclaim"},   {ALLOCSCOPE_MEMALLOC, "memalloc"},
    {ALLOCSCOPE_NOMEMALLOC, "nomemalloc"}, {ALLOCSCOPE_RESERVE, "reserve"},
    {ALLOCSCOPE_NOFAULT, "nofault"},       {ALLOCSCOPE_ZERO, "zero"},
};
// Every bit some flag uses: the named ones and the sixteen reclaim classes.
constexpr Flags kAllFlags = 0x0fffu | kReclaimClassMask;

std::string format(Flags flags) {
  char buf[512];
  return format_flags(flags, buf, sizeof(buf));
}

// parse_flags on a whole string; `ok` says whether it took it.
Flags parse(const std::string &text, bool *ok) {
  Flags out = 0xdeadbeef;
  *ok = parse_flags(text.data(), text.size(), &out);
  return out;
}

Flags parse_ok(const std::string &text) {
  bool ok = false;
  const Flags flags = parse(text, &ok);
  EXPECT_TRUE(ok) << "'" << text << "' did not parse";
  return flags;
}

TEST(Flags, EachFlagHasOneWord) {
  Flags seen = 0;
  for (const Word &w : kWords) {
    EXPECT_EQ(format(w.flag), w.word);
    EXPECT_EQ(parse_ok(w.word), w.flag) << w.word;
    EXPECT_EQ(seen & w.flag, 0u) << w.word << " shares a bit";
    seen |= w.flag;
  }
  EXPECT_EQ(seen & kReclaimClassMask, 0u);
  for (unsigned c = 0; c < 16; ++c) {
    const std::string word = "noreclaim_class(" + std::to_string(c) + ")";
    EXPECT_EQ(format(ALLOCSCOPE_NORECLAIM_CLASS(c)), word);
    EXPECT_EQ(parse_ok(word), ALLOCSCOPE_NORECLAIM_CLASS(c)) << word;
    seen |= ALLOCSCOPE_NORECLAIM_CLASS(c);
  }
  EXPECT_EQ(seen, kAllFlags);
}

TEST(Flags, NothingIsNoneAndNormalAndNoneAreNothing) {
  EXPECT_EQ(format(0), "none");
  EXPECT_EQ(parse_ok("none"), 0u);
  EXPECT_EQ(parse_ok("normal"), 0u);
  EXPECT_EQ(parse_ok("NORMAL|nofail"), ALLOCSCOPE_NOFAIL);
  EXPECT_EQ(kPolicyNormal, 0u);
}

// Words in the table's order, then the classes in ascending order, joined by '|'.
TEST(Flags, FormatJoinsWordsInOneOrder) {
  EXPECT_EQ(format(ALLOCSCOPE_NOWARN | ALLOCSCOPE_NOFAIL | ALLOCSCOPE_NORECLAIM_CLASS(3)),
            "nofail|nowarn|noreclaim_class(3)");
  EXPECT_EQ(format(ALLOCSCOPE_NORECLAIM_CLASS(15) | ALLOCSCOPE_NORECLAIM_CLASS(0) |
                   ALLOCSCOPE_ZERO),
            "zero|noreclaim_class(0)|noreclaim_class(15)");
  std::string all;
  for (const Word &w : kWords) all += (all.empty() ? "" : "|") + std::string(w.word);
  for (int c = 0; c < 16; ++c) all += "|noreclaim_class(" + std::to_string(c) + ")";
  EXPECT_EQ(format(kAllFlags), all);
  // Bits no flag uses are not printed.
  EXPECT_EQ(format(0xf000u), "none");
  EXPECT_EQ(format(ALLOCSCOPE_KV | 0x1000u), "kv");
}

// parse(format(f)) == f for every combination of flags: each bit alone, pairs of bits,
// and a deterministic spread of wider words.
TEST(Flags, FormatAndParseAreInverses) {
  for (int i = 0; i < 32; ++i) {
    const Flags a = (1u << i) & kAllFlags;
    for (int j = i; j < 32; ++j) {
      const Flags f = a | ((1u << j) & kAllFlags);
      EXPECT_EQ(parse_ok(format(f)), f) << format(f);
    }
  }
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < 4096; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const Flags f = static_cast<Flags>(x) & kAllFlags;
    ASSERT_EQ(parse_ok(format(f)), f) << format(f);
  }
}

TEST(Flags, ParseIgnoresCaseAndBlanksAroundWords) {
  EXPECT_EQ(parse_ok("NoFail|KV"), ALLOCSCOPE_NOFAIL | ALLOCSCOPE_KV);
  EXPECT_EQ(parse_ok(" nowait |\tnowarn\t"), ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  EXPECT_EQ(parse_ok("NORECLAIM_CLASS(7)"), ALLOCSCOPE_NORECLAIM_CLASS(7));
  EXPECT_EQ(parse_ok("noreclaim_class(07)"), ALLOCSCOPE_NORECLAIM_CLASS(7));
  EXPECT_EQ(parse_ok("kv|kv"), ALLOCSCOPE_KV) << "a word twice is the flag once";
  // Only the first `len` characters count.
  Flags out = 0;
  EXPECT_TRUE(parse_flags("nofail|garbage", 6, &out));
  EXPECT_EQ(out, ALLOCSCOPE_NOFAIL);
}

// A word that is not a flag fails the whole text, and the output is left alone.
TEST(Flags, BadWordsFailTheWholeText) {
  for (const char *bad :
       {"", "|", "nofail|", "|nofail", "nofail||kv", "bogus", "nofail|bogus", "no fail", "nofai",
        "nofaill", "ALLOCSCOPE_NOFAIL", "0x1", "noreclaim_class", "noreclaim_class()",
        "noreclaim_class(16)", "noreclaim_class(99)", "noreclaim_class(100)", "noreclaim_class(-1)",
        "noreclaim_class(x)", "noreclaim_class(3", "noreclaim_class 3", "noreclaim_class(3)x",
        "noreclaim_class( 3)"}) {
    bool ok = true;
    EXPECT_EQ(parse(bad, &ok), 0xdeadbeefu) << "'" << bad << "'";
    EXPECT_FALSE(ok) << "'" << bad << "'";
  }
}

// A report's buffer may be smaller than the words: the text is cut, never overrun, and
// always terminated.
TEST(Flags, FormatStaysInsideItsBuffer) {
  const Flags f = ALLOCSCOPE_NOFAIL | ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NORECLAIM_CLASS(12);
  const std::string whole = format(f);
  ASSERT_EQ(whole, "nofail|nowait|noreclaim_class(12)");
  for (size_t len = 1; len <= whole.size() + 1; ++len) {
    char buf[64];
    memset(buf, '#', sizeof(buf));
    EXPECT_EQ(format_flags(f, buf, len), buf);
    const size_t n = strnlen(buf, len);
    ASSERT_LT(n, len) << "terminated within " << len;
    EXPECT_EQ(std::string(buf, n), whole.substr(0, len - 1)) << len;
    EXPECT_EQ(buf[len], '#') << "nothing written past " << len;
  }
}

}  // namespace
}  // namespace allocscope
