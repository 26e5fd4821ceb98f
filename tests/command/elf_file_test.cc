// elf_file_test: ElfFile on real files: this test (a PIE), a static non-PIE program
// ($ALLOCSCOPE_TEST_STATIC), the preload ($ALLOCSCOPE_TEST_PRELOAD: its jemalloc
// version), and files that are not ELF.
#include "elf_file.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "preload.h"

namespace allocscope::cmd {
namespace {

std::string Env(const char *name) {
  const char *value = getenv(name);
  return value != nullptr ? value : "";
}

TEST(ElfFile, ADynamicPieHasAnInterpreterAndStartsAtZero) {
  absl::StatusOr<ElfFile> elf = ElfFile::Open("/proc/self/exe");
  ASSERT_TRUE(elf.ok()) << elf.status();
  EXPECT_TRUE(elf->has_interpreter());
  EXPECT_EQ(elf->link_base(), 0u);
}

TEST(ElfFile, AStaticNonPieProgramHasNoInterpreterAndStartsAtItsLinkAddress) {
  absl::StatusOr<ElfFile> elf = ElfFile::Open(Env("ALLOCSCOPE_TEST_STATIC"));
  ASSERT_TRUE(elf.ok()) << elf.status();
  EXPECT_FALSE(elf->has_interpreter());
  EXPECT_EQ(elf->link_base(), 0x400000u);
}

TEST(ElfFile, ReadsASection) {
  absl::StatusOr<ElfFile> elf = ElfFile::Open("/proc/self/exe");
  ASSERT_TRUE(elf.ok()) << elf.status();
  absl::StatusOr<std::string> interp = elf->Section(".interp");
  ASSERT_TRUE(interp.ok()) << interp.status();
  EXPECT_NE(interp->find("ld-linux"), std::string::npos) << *interp;
  EXPECT_FALSE(elf->Section(".no-such-section").ok());
}

TEST(ElfFile, RefusesFilesThatAreNotElf) {
  EXPECT_FALSE(ElfFile::Open("/etc/passwd").ok());
  EXPECT_FALSE(ElfFile::Open("/dev/null").ok());
  EXPECT_FALSE(ElfFile::Open("/nonexistent/file").ok());
  EXPECT_FALSE(ElfFile::Open("/").ok());
}

TEST(JemallocVersion, IsTheStringJemallocEmbeds) {
  absl::StatusOr<std::string> version = JemallocVersion(Env("ALLOCSCOPE_TEST_PRELOAD"));
  ASSERT_TRUE(version.ok()) << version.status();
  // MAJOR.MINOR.BUGFIX-NREV-gGID, as jemalloc's configure writes it.
  EXPECT_NE(version->find("-g"), std::string::npos);
  EXPECT_EQ(version->size() - version->find("-g") - 2, 40u) << *version;
  EXPECT_FALSE(JemallocVersion("/proc/self/exe").ok());
}

}  // namespace
}  // namespace allocscope::cmd
