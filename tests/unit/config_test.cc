// config_test.cc: the ALLOCSCOPE_CONF grammar: values that parse, values that do not,
// and that every bad pair is reported in one line while the others still apply.
#include "control.h"
#include "options.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "report.h"

namespace allocscope {
namespace {

// Sends reports to a temporary file for the duration of a test and reads them back.
class ReportCapture {
 public:
  ReportCapture() {
    char tmpl[] = "/tmp/allocscope-report-XXXXXX";
    int fd = mkstemp(tmpl);
    close(fd);
    path_ = tmpl;
    EXPECT_EQ(set_report_file(path_.c_str()), 0);
  }
  ~ReportCapture() {
    set_report_file("");
    unlink(path_.c_str());
  }
  std::string text() const {
    std::ifstream in(path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::string path_;
};

int count_lines(const std::string &s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(ParseSize, Suffixes) {
  size_t v = 0;
  EXPECT_TRUE(parse_size("0", &v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(parse_size("4096", &v));
  EXPECT_EQ(v, 4096u);
  EXPECT_TRUE(parse_size("64K", &v));
  EXPECT_EQ(v, 64u << 10);
  EXPECT_TRUE(parse_size("512m", &v));
  EXPECT_EQ(v, 512u << 20);
  EXPECT_TRUE(parse_size("3G", &v));
  EXPECT_EQ(v, size_t{3} << 30);
}

TEST(ParseSize, Rejects) {
  size_t v = 7;
  for (const char *bad : {"", "K", "-1", "1.5G", "12T", "0x10", "18446744073709551616",
                          "17179869184G", " 5"}) {
    EXPECT_FALSE(parse_size(bad, &v)) << bad;
    EXPECT_EQ(v, 7u) << bad;
  }
}

TEST(ParseBool, Words) {
  bool v = false;
  for (const char *t : {"true", "TRUE", "1", "yes", "On"}) {
    v = false;
    EXPECT_TRUE(parse_bool(t, &v)) << t;
    EXPECT_TRUE(v);
  }
  for (const char *f : {"false", "0", "no", "OFF"}) {
    v = true;
    EXPECT_TRUE(parse_bool(f, &v)) << f;
    EXPECT_FALSE(v);
  }
  EXPECT_FALSE(parse_bool("maybe", &v));
  EXPECT_FALSE(parse_bool("", &v));
}

TEST(ApplyConfig, GoodPairsApply) {
  ReportCapture capture;
  EXPECT_EQ(apply_config(" STATS_PRINT : true , stats_file:/tmp/x.%p.json ", "test"), 0);
  EXPECT_TRUE(g_config.stats_print);
  EXPECT_STREQ(g_config.stats_file, "/tmp/x.%p.json");
  EXPECT_EQ(apply_config("stats_print:false", "test"), 0);
  EXPECT_FALSE(g_config.stats_print);
  EXPECT_EQ(capture.text(), "");
}

TEST(ApplyConfig, EachBadPairIsOneLineAndTheRestApplies) {
  ReportCapture capture;
  g_config.stats_print = false;
  EXPECT_EQ(apply_config("nonsense:1,stats_print:maybe,stats_print:true,novalue,,", "TESTCONF"),
            3);
  EXPECT_TRUE(g_config.stats_print) << "the good pair after the bad ones still applies";
  const std::string text = capture.text();
  EXPECT_EQ(count_lines(text), 3) << text;
  EXPECT_NE(text.find("allocscope: TESTCONF: unknown key 'nonsense' (known keys: "),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("bad value 'maybe' for key 'stats_print': expected true or false"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("'novalue' is not key:value"), std::string::npos) << text;
}

TEST(ApplyConfig, PolicyAndLimits) {
  ReportCapture capture;
  EXPECT_EQ(apply_config("policy:nofail|nowarn|noreclaim_class(3),retry_max:5,"
                         "nofail_in_nowait:abort,stall_warn_ms:250,max_size:1G,nofail_max:64K,"
                         "warn_burst:0",
                         "test"),
            0)
      << capture.text();
  EXPECT_EQ(g_config.policy.load(),
            ALLOCSCOPE_NOFAIL | ALLOCSCOPE_NOWARN | ALLOCSCOPE_NORECLAIM_CLASS(3));
  EXPECT_EQ(g_config.retry_max.load(), 5u);
  EXPECT_EQ(g_config.nofail_in_nowait.load(), ConflictAction::kAbort);
  EXPECT_EQ(g_config.stall_warn_ms.load(), 250u);
  EXPECT_EQ(g_config.max_size.load(), size_t{1} << 30);
  EXPECT_EQ(g_config.nofail_max.load(), size_t{64} << 10);
  EXPECT_EQ(apply_config("policy:normal,nofail_in_nowait:wait,max_size:9223372036854775807",
                         "test"),
            0);
  EXPECT_EQ(g_config.policy.load(), 0u);
}

TEST(ApplyConfig, BadPolicyAndNumbersAreRejected) {
  ReportCapture capture;
  g_config.retry_max.store(16);
  EXPECT_EQ(apply_config("policy:nofail|bogus,policy:reserve,retry_max:1K,retry_max:2000000,"
                         "nofail_in_nowait:maybe,max_size:0,max_size:9223372036854775808,"
                         "stall_warn_ms:-1,limit:lots",
                         "test"),
            9);
  EXPECT_EQ(g_config.retry_max.load(), 16u);
  EXPECT_EQ(g_config.policy.load(), 0u);
  const std::string text = capture.text();
  EXPECT_EQ(count_lines(text), 9) << text;
  EXPECT_NE(text.find("bad value 'nofail|bogus' for key 'policy': expected flags joined by |"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("bad value 'lots' for key 'limit': expected a size"), std::string::npos)
      << text;
}

TEST(ApplyConfig, LogFileMustBeOpenable) {
  ReportCapture capture;
  EXPECT_EQ(apply_config("log_file:/nonexistent-dir/x.log", "test"), 1);
  EXPECT_NE(capture.text().find("bad value '/nonexistent-dir/x.log' for key 'log_file'"),
            std::string::npos);
}

// The log file is opened per report: the program never sees a descriptor of ours, and a
// descriptor number it reuses never receives our reports.
TEST(ApplyConfig, LogFileHoldsNoDescriptor) {
  char path[] = "/tmp/allocscope-log-XXXXXX";
  close(mkstemp(path));
  ASSERT_EQ(apply_config(std::string("log_file:") + path, "test"), 0);
  report("first");
  for (const auto &entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ignored;
    EXPECT_NE(std::filesystem::read_symlink(entry.path(), ignored).string(), std::string(path));
  }
  report("second");
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  EXPECT_EQ(s.str(), "allocscope: first\nallocscope: second\n");
  set_report_file("");
  unlink(path);
}

TEST(ApplyConfigDeathTest, StrictMakesBadConfigurationFatal) {
  EXPECT_DEATH(
      {
        // The death test's child captures what it writes to a pipe it made fd 2; reports go
        // to the stderr the process started with unless told to follow fd 2.
        set_report_file("/dev/stderr");
        apply_config("strict:true", "test");
        apply_config("stats_print:perhaps", "test");
      },
      "strict:true, so bad configuration is fatal");
}

// A window no address space can hold is refused when it is configured, not at the first
// region.
TEST(Config, KvWindowIsBoundedWhenConfigured) {
  std::string errors;
  EXPECT_EQ(check_config("kv_window:99999999G", "test", &errors), 1);
  EXPECT_NE(errors.find("bad value '99999999G' for key 'kv_window': expected a size from 12K "
                        "to 65536G"),
            std::string::npos)
      << errors;
  errors.clear();
  EXPECT_EQ(check_config("kv_window:65536G,kv_window:4K", "test", &errors), 1) << errors;
}

}  // namespace
}  // namespace allocscope
