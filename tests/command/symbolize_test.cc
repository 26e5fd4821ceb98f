// symbolize_test: addr2line's output read right, and frames of this very test named by
// the Symbolizer the way the preload writes them (module+0xoffset).
#include "symbolize.h"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include "absl/strings/str_format.h"

namespace allocscope::cmd {
namespace {

TEST(ParseAddr2line, ReadsInlinedChainsAndDropsDiscriminators) {
  const auto entries = ParseAddr2line(
      "0x0000000000001238\n"
      "inner\n"
      "/src/a.c:52 (discriminator 3)\n"
      "outer\n"
      "/src/a.c:60\n"
      "0x00000000000015d0\n"
      "??\n"
      "??:0\n");
  ASSERT_EQ(entries.size(), 2u);
  const std::vector<SourcePlace> &a = entries.at(0x1238);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].function, "inner");
  EXPECT_EQ(a[0].source, "/src/a.c:52");
  EXPECT_EQ(a[1].function, "outer");
  EXPECT_EQ(a[1].source, "/src/a.c:60");
  const std::vector<SourcePlace> &b = entries.at(0x15d0);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_FALSE(b[0].function);
  EXPECT_FALSE(b[0].source);
  EXPECT_TRUE(ParseAddr2line("").empty());
}

__attribute__((noinline)) int MarkerFunction(int x) { return x * 3 + 1; }

TEST(Symbolizer, NamesAFrameOfThisProgram) {
  Dl_info info;
  const char *marker = reinterpret_cast<const char *>(&MarkerFunction);
  ASSERT_NE(dladdr(marker, &info), 0);
  const std::string path = info.dli_fname;
  const std::string module = path.substr(path.rfind('/') + 1);
  const std::string frame = absl::StrFormat(
      "%s+0x%x", module, static_cast<size_t>(marker - static_cast<const char *>(info.dli_fbase)));
  Symbolizer symbolizer("");
  symbolizer.Learn(path);
  symbolizer.Prepare({frame, "nosuchmodule.so+0x10", "0x1234"});
  const Symbol s = symbolizer.Lookup(frame);
  EXPECT_EQ(s.module, path);
  ASSERT_TRUE(s.function);
  EXPECT_NE(s.function->find("MarkerFunction"), std::string::npos) << *s.function;
  ASSERT_TRUE(s.source);
  EXPECT_NE(s.source->find("symbolize_test.cc:"), std::string::npos) << *s.source;
  const Symbol unknown = symbolizer.Lookup("nosuchmodule.so+0x10");
  EXPECT_FALSE(unknown.module);
  EXPECT_FALSE(unknown.function);
  const Symbol bare = symbolizer.Lookup("0x1234");
  EXPECT_FALSE(bare.function);
  EXPECT_EQ(bare.frame, "0x1234");
}

TEST(Symbolizer, FindsSystemLibrariesByName) {
  Symbolizer symbolizer("");
  const Symbol s = symbolizer.Lookup("libc.so.6+0x100");
  ASSERT_TRUE(s.module);
  EXPECT_NE(s.module->find("libc.so.6"), std::string::npos);
}

}  // namespace
}  // namespace allocscope::cmd
