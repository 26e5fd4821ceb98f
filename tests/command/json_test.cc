// json_test: the JSON reader and writer the command uses for records and reports.
#include "json.h"

#include <gtest/gtest.h>

#include <string>

namespace allocscope::cmd {
namespace {

TEST(Json, ParsesARecordLine) {
  absl::StatusOr<Json> j =
      ParseJson(R"({"v":1,"pid":42,"size":1000,"function":"malloc","callsite":"a+0x1",)"
                R"("backtrace":["a+0x1","libc.so.6+0x2"],"ratio":0.5,"ok":true,"none":null})");
  ASSERT_TRUE(j.ok()) << j.status();
  ASSERT_TRUE(j->is_object());
  EXPECT_EQ(j->find("pid")->as_int(), 42);
  EXPECT_EQ(j->find("function")->as_string(), "malloc");
  EXPECT_EQ(j->find("backtrace")->as_array().size(), 2u);
  EXPECT_EQ(j->find("ratio")->Dump(), "0.5");
  EXPECT_TRUE(j->find("ok")->as_bool());
  EXPECT_TRUE(j->find("none")->is_null());
  EXPECT_EQ(j->find("missing"), nullptr);
}

TEST(Json, RefusesWhatIsNotJson) {
  for (const char *text :
       {"", "{", R"({"a":1)", R"({"a":1,})", "[1,]", "{'a':1}", "01", "1.", "-", R"("\x")", "\"a",
        "nul", "[] x", "\"\x01\"", R"("\ud800")", "\"\xff\""}) {
    EXPECT_FALSE(ParseJson(text).ok()) << text;
  }
}

TEST(Json, DecodesEscapesAndSurrogatePairs) {
  absl::StatusOr<Json> j = ParseJson(R"(["a\"b\\c\/\n\t", "\u00e9", "\ud83d\ude00"])");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(j->as_array()[0].as_string(), "a\"b\\c/\n\t");
  EXPECT_EQ(j->as_array()[1].as_string(), "\xc3\xa9");
  EXPECT_EQ(j->as_array()[2].as_string(), "\xf0\x9f\x98\x80");
}

TEST(Json, LimitsNesting) {
  EXPECT_TRUE(ParseJson(std::string(60, '[') + std::string(60, ']')).ok());
  EXPECT_FALSE(ParseJson(std::string(100000, '[') + std::string(100000, ']')).ok());
}

TEST(Json, DumpsWhatItParses) {
  Json o{Json::Object{}};
  o.set("name", "a \"quoted\"\nline\x01");
  o.set("n", int64_t{-7});
  o.set("x", 0.0135);
  o.set("list", Json::Array{Json(1), Json(), Json(true)});
  o.set("empty", Json::Object{});
  for (int indent : {0, 1}) {
    const std::string text = o.Dump(indent);
    absl::StatusOr<Json> back = ParseJson(text);
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << text;
    EXPECT_EQ(back->Dump(), o.Dump());
  }
  EXPECT_EQ(o.Dump(),
            R"({"name":"a \"quoted\"\nline\u0001","n":-7,"x":0.0135,"list":[1,null,true],)"
            R"("empty":{}})");
}

TEST(Json, NonFiniteNumbersAreNull) { EXPECT_EQ(Json(1.0 / 0.0).Dump(), "null"); }

TEST(ValidUtf8, ReplacesWhatIsNotUtf8) {
  EXPECT_EQ(ValidUtf8("plain caf\xc3\xa9"), "plain caf\xc3\xa9");
  EXPECT_EQ(ValidUtf8("a\xff"
                      "b"),
            "a\xef\xbf\xbd"
            "b");
  EXPECT_EQ(ValidUtf8("\xc3"), "\xef\xbf\xbd");                                  // cut short
  EXPECT_EQ(ValidUtf8("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // a surrogate
  EXPECT_TRUE(ParseJson(JsonQuote(ValidUtf8("x\x80y\xfe"))).ok());
}

}  // namespace
}  // namespace allocscope::cmd
