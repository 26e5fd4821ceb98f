// temp_dir.h: a directory under /tmp for one test, removed with everything in it.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "subprocess.h"

namespace allocscope::cmd {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/allocscope-command-test-XXXXXX";
    EXPECT_NE(mkdtemp(tmpl), nullptr);
    path_ = tmpl;
  }
  ~TempDir() { (void)CaptureOutput({"rm", "-rf", path_}, absl::Seconds(60)); }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;

  const std::string &path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace allocscope::cmd
