// subprocess_test: GroupRunner on real processes: exit statuses, signals, timeouts, whole
// process groups killed, Stop(); CaptureOutput; Environment.
#include "subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "temp_dir.h"

namespace allocscope::cmd {
namespace {

// Running (a zombie is dead: nothing may reap an orphan in a container without an init).
bool Alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

// Waits up to 1 s for pid to die.
bool Dies(pid_t pid) {
  for (int i = 0; i < 100 && Alive(pid); ++i) usleep(10000);
  return !Alive(pid);
}

class GroupRunnerTest : public testing::Test {
 protected:
  SpawnRequest Shell(const std::string &script, absl::Duration timeout = absl::Seconds(30)) {
    SpawnRequest r;
    r.program = "/bin/sh";
    r.argv = {"sh", "-c", script};
    r.env = Environment::Current();
    r.stdin_path = "/dev/null";
    r.stdout_path = dir_ + "/out";
    r.stderr_path = dir_ + "/err";
    r.timeout = timeout;
    return r;
  }
  std::string Read(const std::string &name) {
    std::ifstream in(dir_ + "/" + name);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  TempDir temp_;
  const std::string &dir_ = temp_.path();
  GroupRunner runner_;
};

TEST_F(GroupRunnerTest, ExitStatusAndOutput) {
  absl::StatusOr<RunExit> e = runner_.Run(Shell("echo out; echo err >&2; exit 7"));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->exit_status, 7);
  EXPECT_FALSE(e->signal);
  EXPECT_FALSE(e->timed_out);
  EXPECT_EQ(Read("out"), "out\n");
  EXPECT_EQ(Read("err"), "err\n");
}

TEST_F(GroupRunnerTest, StdinComesFromTheFile) {
  std::ofstream(dir_ + "/in") << "replayed\n";
  SpawnRequest r = Shell("cat; echo done >&2");
  r.stdin_path = dir_ + "/in";
  r.stderr_path = "";  // with stdout
  ASSERT_TRUE(runner_.Run(r).ok());
  EXPECT_EQ(Read("out"), "replayed\ndone\n");
}

TEST_F(GroupRunnerTest, ASignalIsReported) {
  absl::StatusOr<RunExit> e = runner_.Run(Shell("kill -SEGV $$"));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->signal, SIGSEGV);
  EXPECT_FALSE(e->exit_status);
}

TEST_F(GroupRunnerTest, RunsStartWithNoSignalBlocked) {
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  absl::StatusOr<RunExit> e = runner_.Run(Shell("kill -TERM $$; exit 3"));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->signal, SIGTERM);
}

// A run past its timeout is killed with everything it started; so is whatever a run
// leaves behind when it exits.
TEST_F(GroupRunnerTest, TimeoutKillsTheWholeGroup) {
  absl::StatusOr<RunExit> e =
      runner_.Run(Shell("sleep 60 & echo $! > " + dir_ + "/bg; sleep 60", absl::Milliseconds(300)));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_TRUE(e->timed_out);
  EXPECT_FALSE(e->signal);  // our kill, not the program's crash
  EXPECT_FALSE(e->exit_status);
  EXPECT_LT(e->duration, absl::Seconds(10));
  EXPECT_TRUE(Dies(std::stoi(Read("bg")))) << "the background sleep survived";
}

TEST_F(GroupRunnerTest, LeftoversAreKilledWhenTheLeaderExits) {
  absl::StatusOr<RunExit> e = runner_.Run(Shell("sleep 60 & echo $! > " + dir_ + "/bg; exit 0"));
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->exit_status, 0);
  EXPECT_TRUE(Dies(std::stoi(Read("bg")))) << "the background sleep survived";
}

TEST_F(GroupRunnerTest, StopKillsRunsAndRefusesNewOnes) {
  std::thread stopper([this] {
    usleep(200000);
    runner_.Stop();
  });
  const absl::Time start = absl::Now();
  absl::StatusOr<RunExit> e = runner_.Run(Shell("sleep 60"));
  stopper.join();
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->signal, SIGKILL);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_TRUE(runner_.stopped());
  EXPECT_TRUE(absl::IsCancelled(runner_.Run(Shell("true")).status()));
}

TEST_F(GroupRunnerTest, AProgramThatCannotStartIsAnError) {
  SpawnRequest r = Shell("true");
  r.program = dir_ + "/missing";
  EXPECT_FALSE(runner_.Run(r).ok());
}

TEST(CaptureOutput, ReturnsStdout) {
  absl::StatusOr<std::string> out =
      CaptureOutput({"sh", "-c", "echo hi; echo no >&2"}, absl::Seconds(30));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "hi\n");
  EXPECT_FALSE(CaptureOutput({"sh", "-c", "exit 1"}, absl::Seconds(30)).ok());
  EXPECT_FALSE(CaptureOutput({"allocscope-no-such-program"}, absl::Seconds(30)).ok());
  EXPECT_TRUE(
      absl::IsDeadlineExceeded(CaptureOutput({"sleep", "60"}, absl::Milliseconds(200)).status()));
}

TEST(Environment, SetGetErase) {
  Environment env;
  env.Set("A", "1");
  env.Set("B", "x=y");
  env.Set("A", "2");
  EXPECT_EQ(env.Get("A"), "2");
  EXPECT_EQ(env.Entries(), (std::vector<std::string>{"A=2", "B=x=y"}));
  env.Erase("A");
  EXPECT_FALSE(env.Get("A"));
  setenv("ALLOCSCOPE_SPAWN_TEST", "v", 1);
  EXPECT_EQ(Environment::Current().Get("ALLOCSCOPE_SPAWN_TEST"), "v");
}

}  // namespace
}  // namespace allocscope::cmd
