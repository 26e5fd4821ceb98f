// records_test: fault.log and fault.record lines as policy/record_format.h describes them:
// parsed, refused when their version is unknown, and read from files the real preload
// wrote ($ALLOCSCOPE_TEST_PRELOAD running $ALLOCSCOPE_TEST_SWEEP_TARGET).
#include "records.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "record_format.h"
#include "subprocess.h"
#include "temp_dir.h"

namespace allocscope::cmd {
namespace {

TEST(ParseInjection, ReadsEveryField) {
  absl::StatusOr<std::optional<Injection>> in =
      ParseInjection(R"({"v":2,"pid":10,"tid":11,"size":1000,"function":"malloc","nth":7,)"
                     R"("callsite":"prog+0x1238","module":"/bin/prog","offset":"0x1238",)"
                     R"("backtrace":["prog+0x1238","libc.so.6+0x27249"]})");
  ASSERT_TRUE(in.ok()) << in.status();
  ASSERT_TRUE(*in);
  const Injection &i = **in;
  EXPECT_EQ(i.pid, 10);
  EXPECT_EQ(i.tid, 11);
  EXPECT_EQ(i.size, 1000u);
  EXPECT_EQ(i.function, "malloc");
  EXPECT_EQ(i.nth, 7u);
  EXPECT_EQ(i.callsite, "prog+0x1238");
  EXPECT_EQ(i.module, "/bin/prog");
  EXPECT_EQ(i.offset, "0x1238");
  EXPECT_EQ(i.backtrace, (std::vector<std::string>{"prog+0x1238", "libc.so.6+0x27249"}));
}

TEST(ParseInjection, ACallSiteMayBeAbsent) {
  absl::StatusOr<std::optional<Injection>> in = ParseInjection(
      R"({"v":2,"pid":10,"tid":11,"size":8,"function":"calloc","nth":0,"backtrace":[]})");
  ASSERT_TRUE(in.ok()) << in.status();
  ASSERT_TRUE(*in);
  EXPECT_FALSE((*in)->callsite);
}

TEST(ParseInjection, ALineCutShortIsSkipped) {
  absl::StatusOr<std::optional<Injection>> in = ParseInjection(R"({"v":2,"pid":10,"ti)");
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_FALSE(*in);
}

TEST(ParseInjection, AnUnknownVersionIsRefused) {
  absl::StatusOr<std::optional<Injection>> in = ParseInjection(
      R"({"v":9,"pid":10,"tid":11,"size":8,"function":"malloc","nth":0,"backtrace":[]})");
  ASSERT_FALSE(in.ok());
  EXPECT_EQ(in.status().message(),
            "a fault.log line of format version 9; this allocscope reads version 2 (the "
            "preload and the command come from different builds)");
  in = ParseInjection(R"({"pid":10,"tid":11,"size":8,"function":"malloc","nth":0,"backtrace":[]})");
  ASSERT_FALSE(in.ok());
  EXPECT_TRUE(absl::StrContains(in.status().message(), "without a format version")) << in.status();
}

TEST(ParseInjection, ReadsTheStack) {
  absl::StatusOr<std::optional<Injection>> in = ParseInjection(
      R"({"v":2,"pid":10,"tid":11,"size":8,"function":"malloc","nth":3,)"
      R"("stack":"00ff00ff00ff00ff","depth":8,"persistent":true,"backtrace":[]})");
  ASSERT_TRUE(in.ok()) << in.status();
  ASSERT_TRUE(*in);
  EXPECT_EQ((*in)->stack, "00ff00ff00ff00ff");
  EXPECT_EQ((*in)->depth, 8);
  EXPECT_TRUE((*in)->persistent);
}

TEST(ParseStackRecord, ReadsEveryField) {
  absl::StatusOr<std::optional<StackRecord>> r = ParseStackRecord(
      R"({"v":2,"kind":"stack","stack":"0123456789abcdef","count":4,)"
      R"("frames":["prog+0x10","libc.so.6+0x27249"]})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(*r);
  EXPECT_EQ((*r)->stack, "0123456789abcdef");
  EXPECT_EQ((*r)->count, 4u);
  EXPECT_EQ((*r)->frames, (std::vector<std::string>{"prog+0x10", "libc.so.6+0x27249"}));
}

TEST(ParseEvent, ReadsExitAndCrashLines) {
  absl::StatusOr<std::optional<EventRecord>> e = ParseEvent(
      R"({"v":2,"kind":"exit","pid":5,"ppid":4,"tid":5,"exe":"prog","status":3,"how":"_exit",)"
      R"("injected":1,"injection_nth":2,"injection_stack":"00000000000000aa",)"
      R"("failed_path_bytes":100,"failed_path_blocks":2,"live_bytes":500,"frames":["prog+0x1"]})");
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE(*e);
  EXPECT_EQ((*e)->kind, "exit");
  EXPECT_EQ((*e)->ppid, 4);
  EXPECT_EQ((*e)->status, 3);
  EXPECT_EQ((*e)->how, "_exit");
  EXPECT_EQ((*e)->injection_stack, "00000000000000aa");
  EXPECT_EQ((*e)->failed_path_bytes, 100);
  EXPECT_EQ((*e)->live_bytes, 500);
  e = ParseEvent(R"({"v":2,"kind":"crash","pid":5,"ppid":4,"tid":6,"exe":"prog","signal":11,)"
                 R"("injected":0,"frames":["prog+0x1","libc.so.6+0x2"]})");
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_TRUE(*e);
  EXPECT_EQ((*e)->signal, 11);
  EXPECT_EQ((*e)->frames.size(), 2u);
  e = ParseEvent(R"({"v":2,"kind":"start","pid":5,"ppid":4,"tid":5,"exe":"prog"})");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_TRUE(*e);
}

TEST(ParseSiteRecord, ReadsEveryFieldAndChecksTypes) {
  absl::StatusOr<std::optional<SiteRecord>> r = ParseSiteRecord(
      R"({"v":2,"callsite":"prog+0x10","module":"/bin/prog","offset":"0x10","count":3})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(*r);
  EXPECT_EQ((*r)->callsite, "prog+0x10");
  EXPECT_EQ((*r)->module, "/bin/prog");
  EXPECT_EQ((*r)->offset, "0x10");
  EXPECT_EQ((*r)->count, 3u);
  r = ParseSiteRecord(
      R"({"v":2,"callsite":"prog+0x10","module":"/bin/prog","offset":"0x10","count":"3"})");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::StrContains(r.status().message(), "\"count\" is not a whole number"))
      << r.status();
}

// What the preload really writes, read back.
TEST(Records, TheReaderReadsWhatThePreloadWrites) {
  const char *preload = getenv("ALLOCSCOPE_TEST_PRELOAD");
  const char *target = getenv("ALLOCSCOPE_TEST_SWEEP_TARGET");
  ASSERT_TRUE(preload != nullptr && target != nullptr)
      << "set ALLOCSCOPE_TEST_PRELOAD and ALLOCSCOPE_TEST_SWEEP_TARGET";
  TempDir temp;
  const std::string &dir = temp.path();
  SpawnRequest r;
  r.program = target;
  r.argv = {target};
  r.env = Environment::Current();
  r.env.Set("LD_PRELOAD", preload);
  // The 3rd allocation fails: sweep_target exits with its check's status and the preload
  // writes one fault.log line and, at exit, the call sites up to there.
  r.env.Set("ALLOCSCOPE_CONF", absl::StrCat("fault.nth:3,fault.log:", dir, "/fault.%p.jsonl,",
                                            "fault.record:", dir, "/record.%p.jsonl"));
  r.stdin_path = "/dev/null";
  r.stdout_path = dir + "/out";
  r.timeout = absl::Seconds(60);
  GroupRunner runner;
  absl::StatusOr<RunExit> exit = runner.Run(r);
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_status, 13);

  absl::StatusOr<std::vector<Injection>> injections = ReadInjections(dir, "fault");
  ASSERT_TRUE(injections.ok()) << injections.status();
  ASSERT_EQ(injections->size(), 1u);
  const Injection &in = injections->front();
  EXPECT_EQ(in.function, "realloc");
  EXPECT_EQ(in.nth, 3u);
  EXPECT_EQ(in.size, 200u);
  ASSERT_TRUE(in.callsite && in.module && in.offset);
  EXPECT_TRUE(absl::StartsWith(*in.callsite, "sweep_target+0x")) << *in.callsite;
  EXPECT_TRUE(absl::EndsWith(*in.callsite, "+" + *in.offset));
  EXPECT_FALSE(in.backtrace.empty());
  EXPECT_EQ(in.backtrace.front(), *in.callsite);

  absl::StatusOr<std::vector<ProcessRecords>> records = ReadSiteRecords(dir, "record");
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 1u);
  ASSERT_EQ(records->front().sites.size(), 3u);
  for (const SiteRecord &s : records->front().sites) {
    EXPECT_EQ(s.module, *in.module);
    EXPECT_EQ(s.count, 1u);
  }
}

}  // namespace
}  // namespace allocscope::cmd
