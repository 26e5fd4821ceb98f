// program_test: finding CMD as a shell does (127 not found, 126 not executable), and the
// warnings for programs the preload cannot act in.
#include "program.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "exit_status.h"
#include "temp_dir.h"

namespace allocscope::cmd {
namespace {

class FindProgramTest : public testing::Test {
 protected:
  void SetUp() override { old_path_ = getenv("PATH") ? getenv("PATH") : ""; }
  void TearDown() override { setenv("PATH", old_path_.c_str(), 1); }
  std::string File(const std::string &name, mode_t mode) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n";
    chmod(path.c_str(), mode);
    return path;
  }

  TempDir temp_;
  const std::string &dir_ = temp_.path();
  std::string old_path_;
};

TEST_F(FindProgramTest, SearchesPathForAnExecutable) {
  absl::StatusOr<std::string> sh = FindProgram("sh");
  ASSERT_TRUE(sh.ok()) << sh.status();
  EXPECT_EQ(access(sh->c_str(), X_OK), 0);
  // A non-executable file of the same name earlier on PATH is passed over.
  File("true", 0644);
  setenv("PATH", (dir_ + ":/usr/bin:/bin").c_str(), 1);
  absl::StatusOr<std::string> t = FindProgram("true");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_NE(*t, dir_ + "/true");
}

TEST_F(FindProgramTest, NotFoundIs127) {
  absl::StatusOr<std::string> p = FindProgram("allocscope-no-such-program");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(ExitStatusFor(p.status()), kExitNotFound);
  EXPECT_EQ(p.status().message(), "allocscope-no-such-program: command not found");
  p = FindProgram(dir_ + "/missing");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(ExitStatusFor(p.status()), kExitNotFound);
}

TEST_F(FindProgramTest, NotExecutableIs126) {
  const std::string plain = File("plain", 0644);
  absl::StatusOr<std::string> p = FindProgram(plain);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(ExitStatusFor(p.status()), kExitCannotExecute);
  EXPECT_EQ(p.status().message(), plain + ": Permission denied");
  p = FindProgram(dir_);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(ExitStatusFor(p.status()), kExitCannotExecute);
  EXPECT_EQ(p.status().message(), dir_ + ": Is a directory");
  // Found on PATH only as a file that cannot run: 126, as execvp says EACCES.
  setenv("PATH", dir_.c_str(), 1);
  p = FindProgram("plain");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(ExitStatusFor(p.status()), kExitCannotExecute);
}

TEST_F(FindProgramTest, WarnsAboutSetuidPrograms) {
  const std::string setuid = File("setuid", 04755);
  const std::vector<std::string> warnings = PreloadWarnings(setuid);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("is setuid/setgid"), std::string::npos) << warnings[0];
  EXPECT_TRUE(PreloadWarnings("/proc/self/exe").empty());
}

}  // namespace
}  // namespace allocscope::cmd
