// control_test.cc: apply_config() end to end: each pair reaches the module that owns it,
// every bad pair is reported in one line while the others still apply, and strict:true
// makes bad configuration fatal. The grammar itself (options.h) is options_test.cc's.
#include "control.h"

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "budget.h"
#include "engine_support.h"
#include "gate.h"
#include "options.h"
#include "report.h"

namespace allocscope {
namespace {

using engine_support::ReportCapture;

int count_lines(const std::string &text) { return test_support::count_of(text, "\n"); }

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
  EXPECT_NE(text.find("bad value 'maybe' for key 'stats_print': expected summary (a short table), json or "
                      "true (the JSON), or false"),
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
  test_support::TempFile file;
  const std::string path = file.path();
  ASSERT_EQ(apply_config("log_file:" + path, "test"), 0);
  report("first");
  for (const auto &entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ignored;
    EXPECT_NE(std::filesystem::read_symlink(entry.path(), ignored).string(), path);
  }
  report("second");
  EXPECT_EQ(file.text(), "allocscope: first\nallocscope: second\n");
  set_report_file("");
}

// Each key that a module owns reaches that module, and the gate follows: a limit engages
// the accounting, KV in the default policy engages kv and (with kv_direct) kv_to_region, a
// rule sends failures to the engine. Setting them back disengages all of it.
TEST(ApplyConfig, EachKeyReachesTheModuleThatOwnsIt) {
  ReportCapture capture;
  ASSERT_EQ(gate::bits(), 0u) << "a fresh process has nothing engaged";
  ASSERT_EQ(apply_config("limit:64M,arena_limit:32M,emergency:1M,policy:kv,kv_direct:1M,"
                         "kv_threshold:128K,rules:libnothing=nowait",
                         "test"),
            0)
      << capture.text();
  EXPECT_EQ(budget::limit(), size_t{64} << 20);
  EXPECT_EQ(budget::arena_limit(), size_t{32} << 20);
  EXPECT_EQ(budget::emergency(), size_t{1} << 20);
  EXPECT_EQ(g_config.policy.load(), ALLOCSCOPE_KV);
  EXPECT_EQ(g_config.kv_to_region_from.load(), size_t{1} << 20);
  EXPECT_EQ(g_config.kv_threshold.load(), size_t{128} << 10);
  EXPECT_EQ(gate::bits(), gate::kLimit | gate::kKv | gate::kKvToRegion | gate::kOnFailure);
  EXPECT_TRUE(gate::limit_is_set());

  ASSERT_EQ(apply_config("limit:0,arena_limit:0,emergency:0,policy:normal,kv_direct:0,"
                         "kv_threshold:64K,rules:none",
                         "test"),
            0)
      << capture.text();
  EXPECT_EQ(budget::limit(), 0u);
  EXPECT_EQ(gate::bits(), 0u);
  EXPECT_EQ(capture.text(), "");
}

// fault.reset puts every fault.* setting back, fault.seed included (issue 14: it once kept
// the seed), and injection goes off.
TEST(ApplyConfig, FaultResetRestoresEveryFaultSetting) {
  ReportCapture capture;
  ASSERT_EQ(apply_config("fault.probability:1/1000,fault.interval:3,fault.times:5,"
                         "fault.space:4K,fault.size_min:16,fault.size_max:1M,fault.depth:4,"
                         "fault.caller:libx,fault.reject:liby,fault.callsite:libz.so+0x1f,"
                         "fault.threads:marked,fault.seed:42,fault.verbose:1",
                         "test"),
            0)
      << capture.text();
  const FaultSettings &f = g_fault_settings;
  EXPECT_TRUE(f.enabled.load());
  EXPECT_EQ(f.probability.load(), UINT64_MAX / 1000);
  EXPECT_EQ(f.interval.load(), 3u);
  EXPECT_EQ(f.times.load(), 5);
  EXPECT_EQ(f.space.load(), 4096);
  EXPECT_EQ(f.size_min.load(), 16u);
  EXPECT_EQ(f.size_max.load(), size_t{1} << 20);
  EXPECT_EQ(f.depth.load(), 4);
  EXPECT_STREQ(f.caller, "libx");
  EXPECT_STREQ(f.reject, "liby");
  EXPECT_TRUE(f.callsite_set.load());
  EXPECT_STREQ(f.callsite_module, "libz.so");
  EXPECT_EQ(f.callsite_offset.load(), 0x1fu);
  EXPECT_TRUE(f.marked_only.load());
  EXPECT_EQ(f.seed.load(), 42u);
  EXPECT_EQ(f.verbose.load(), 1);
  EXPECT_TRUE(gate::bits() & gate::kFaults);

  ASSERT_EQ(apply_config("fault.reset:true", "test"), 0);
  const FaultSettings defaults;
  EXPECT_EQ(f.enabled.load(), defaults.enabled.load());
  EXPECT_EQ(f.probability.load(), defaults.probability.load());
  EXPECT_EQ(f.interval.load(), defaults.interval.load());
  EXPECT_EQ(f.times.load(), defaults.times.load());
  EXPECT_EQ(f.space.load(), defaults.space.load());
  EXPECT_EQ(f.size_min.load(), defaults.size_min.load());
  EXPECT_EQ(f.size_max.load(), defaults.size_max.load());
  EXPECT_EQ(f.depth.load(), defaults.depth.load());
  EXPECT_STREQ(f.caller, "");
  EXPECT_STREQ(f.reject, "");
  EXPECT_FALSE(f.callsite_set.load());
  EXPECT_STREQ(f.callsite_module, "");
  EXPECT_FALSE(f.marked_only.load());
  EXPECT_EQ(f.seed.load(), defaults.seed.load());
  EXPECT_EQ(f.verbose.load(), defaults.verbose.load());
  EXPECT_FALSE(gate::bits() & gate::kFaults);
}

// A pair the parser accepts but its module refuses is reported as a bad value like any
// other, and the other pairs still apply.
TEST(ApplyConfig, APairItsModuleRefusesIsABadValue) {
  ReportCapture capture;
  g_config.retry_max.store(16);
  EXPECT_EQ(apply_config("log_file:/nonexistent-dir/x.log,retry_max:7", "test"), 1);
  EXPECT_EQ(g_config.retry_max.load(), 7u);
  EXPECT_EQ(capture.text(),
            "allocscope: test: bad value '/nonexistent-dir/x.log' for key 'log_file': expected "
            "stderr, or a file path (%p = pid; relative to the current directory) to a regular "
            "file of yours that can be opened for appending, with no symbolic link in the path\n");
  g_config.retry_max.store(16);
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

}  // namespace
}  // namespace allocscope
