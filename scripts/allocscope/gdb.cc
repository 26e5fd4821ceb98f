// gdb.cc: see gdb.h.
#include "gdb.h"

#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "program.h"

namespace allocscope::cmd {
namespace {

// gdb runs CMD itself (no shell in between, so nothing but CMD sees the preload or the
// fault keys) and prints the backtrace where it stops.
std::vector<std::string> GdbCommand(const std::string &gdb, const Environment &run_env,
                                    const std::vector<std::string> &command) {
  std::vector<std::string> argv = {gdb,
                                   "-batch",
                                   "-nx",
                                   "-ex",
                                   "set startup-with-shell off",
                                   "-ex",
                                   "set debuginfod enabled off",
                                   "-ex",
                                   "set pagination off",
                                   "-ex",
                                   "set width 0",
                                   "-ex",
                                   "set confirm off",
                                   "-ex",
                                   "unset environment LINES",
                                   "-ex",
                                   "unset environment COLUMNS"};
  for (const char *var : {"LD_PRELOAD", "ALLOCSCOPE_CONF"}) {
    argv.push_back("-ex");
    argv.push_back(absl::StrCat("set environment ", var, "=", run_env.Get(var).value_or("")));
  }
  for (const char *tail : {"-ex", "run", "-ex", "bt 64", "--args"}) argv.push_back(tail);
  argv.insert(argv.end(), command.begin(), command.end());
  return argv;
}

// "#3  0x... in main () at x.c:5": gdb's frame lines.
bool IsFrameLine(absl::string_view line) {
  if (line.size() < 3 || line[0] != '#' ||
      !absl::ascii_isdigit(static_cast<unsigned char>(line[1])))
    return false;
  size_t i = 1;
  while (i < line.size() && absl::ascii_isdigit(static_cast<unsigned char>(line[i]))) ++i;
  return i < line.size() && absl::ascii_isspace(static_cast<unsigned char>(line[i]));
}

// Re-runs a crash point under gdb; its "#N" lines.
absl::StatusOr<std::vector<std::string>> CrashBacktrace(Launcher &launcher, const std::string &gdb,
                                                        const Point &point) {
  absl::StatusOr<std::string> dir =
      launcher.NewDir(absl::StrCat("gdb-", absl::StrReplaceAll(point.label, {{" ", "-"}})));
  if (!dir.ok()) return dir.status();
  std::vector<std::string> pairs = point.fault;
  pairs.push_back(absl::StrCat("fault.log:", *dir, "/fault.%p.jsonl"));
  SpawnRequest request;
  request.program = gdb;
  request.argv = GdbCommand(gdb, launcher.RunEnvironment(pairs), launcher.command());
  request.env = Environment::Current();
  request.env.Erase("LD_PRELOAD");
  request.env.Erase("ALLOCSCOPE_CONF");
  request.stdin_path = launcher.stdin_path();
  request.stdout_path = absl::StrCat(*dir, "/gdb.out");
  request.timeout = launcher.timeout() * 2 + absl::Seconds(30);
  absl::StatusOr<RunExit> exit = launcher.runner().Run(request);
  if (!exit.ok()) return exit.status();
  std::vector<std::string> frames;
  for (absl::string_view line : absl::StrSplit(ReadTail(request.stdout_path, 1 << 20), '\n'))
    if (IsFrameLine(line)) frames.emplace_back(absl::StripTrailingAsciiWhitespace(line));
  return frames;
}

}  // namespace

absl::Status AddCrashBacktraces(Launcher &launcher, std::vector<Point> &points, int jobs,
                                Progress &progress) {
  // The groups, in the order of their first point.
  absl::flat_hash_map<std::string, size_t> group_of;
  std::vector<std::vector<Point *>> groups;
  for (Point &p : points) {
    if (p.outcome != Outcome::kCrash) continue;
    const std::string key = p.injections.empty()
                                ? absl::StrCat("point ", p.key)
                                : absl::StrJoin(p.injections.front().backtrace, " ");
    auto [it, added] = group_of.try_emplace(key, groups.size());
    if (added) groups.emplace_back();
    groups[it->second].push_back(&p);
  }
  if (groups.empty()) return absl::OkStatus();
  absl::StatusOr<std::string> gdb = FindProgram("gdb");
  if (!gdb.ok()) {
    progress.Note("gdb not found: no crash backtraces");
    return absl::OkStatus();
  }
  progress.Note(absl::StrCat(groups.size(), " crash backtrace(s) under gdb"));
  absl::Mutex mu;
  size_t next = 0;
  absl::Status status;
  const auto worker = [&] {
    while (true) {
      size_t i;
      {
        absl::MutexLock lock(&mu);
        if (next == groups.size() || !status.ok()) return;
        i = next++;
      }
      absl::StatusOr<std::vector<std::string>> trace =
          CrashBacktrace(launcher, *gdb, *groups[i].front());
      absl::MutexLock lock(&mu);
      if (!trace.ok()) {
        status.Update(trace.status());
        return;
      }
      for (Point *p : groups[i]) p->crash_backtrace = *trace;
    }
  };
  std::vector<std::thread> threads;
  for (int j = 0; j < std::min<int>(jobs, static_cast<int>(groups.size())); ++j)
    threads.emplace_back(worker);
  for (std::thread &t : threads) t.join();
  return status;
}

}  // namespace allocscope::cmd
