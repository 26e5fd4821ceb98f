// sweep.cc: `allocscope sweep`: its flags, the checks before anything runs, the working
// directory and the replayed stdin, SIGINT/SIGTERM, and the report's outputs. The sweep
// itself (baseline, points, symbols) is sweeper.h's.
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "exit_status.h"
#include "flag_types.h"
#include "interrupt.h"
#include "launcher.h"
#include "paths.h"
#include "preload.h"
#include "sweep_report.h"
#include "sweeper.h"
#include "verbs.h"

namespace allocscope::cmd {

// How absl reads and writes --mode.
bool AbslParseFlag(absl::string_view text, SweepMode *mode, std::string *error) {
  if (text == "nth" || text == "callsite" || text == "stack") {
    *mode = text == "nth" ? SweepMode::kNth
            : text == "stack" ? SweepMode::kStack
                              : SweepMode::kCallsite;
    return true;
  }
  *error = "expected stack, nth or callsite";
  return false;
}

std::string AbslUnparseFlag(SweepMode mode) { return std::string(SweepModeName(mode)); }

}  // namespace allocscope::cmd

ABSL_FLAG(allocscope::cmd::SweepMode, mode, allocscope::cmd::SweepMode::kStack,
          "stack: fail the first allocation of each call stack (--depth frames) the baseline "
          "recorded; nth: fail the 1st, 2nd, 3rd ... allocation until one is never reached; "
          "callsite: fail the first allocation at each call site the baseline recorded");
ABSL_FLAG(std::optional<allocscope::cmd::PositiveCount>, depth, std::nullopt,
          "frames of the allocation's stack that make its identity (fault.depth; 1 to 32, "
          "default 8)");
ABSL_FLAG(std::vector<std::string>, only, {},
          "MODULE,...: only allocations whose stack passes through one of these modules (file "
          "names as in the reports, e.g. libsqlite3.so.0) become points (fault.only)");
ABSL_FLAG(bool, persistent, false,
          "the point and every later eligible allocation of the process fail "
          "(fault.persistent)");
ABSL_FLAG(bool, ignore_output, false,
          "judge points by exit status and crashes only, not by stdout and stderr");
ABSL_FLAG(bool, gdb, false,
          "also re-run each crash under gdb for its backtrace (the crash records give one "
          "without)");
ABSL_FLAG(allocscope::cmd::PositiveCount, jobs, {2}, "runs at a time");
ABSL_FLAG(allocscope::cmd::Seconds, timeout, {absl::Seconds(30)},
          "seconds before a run counts as a hang (its process group is killed)");
ABSL_FLAG(std::optional<allocscope::cmd::PositiveCount>, max_points, std::nullopt,
          "stop after this many points");
ABSL_FLAG(std::string, json, "", "write the full report as JSON to this file");
ABSL_FLAG(std::string, html, "", "write the report as a self-contained HTML page to this file");
ABSL_FLAG(std::string, stdin, "",
          "the file every run reads as stdin (default: the sweep's own stdin, read once, "
          "unless it is a terminal)");
ABSL_FLAG(bool, keep, false, "keep the working directory with each run's output and fault logs");

namespace allocscope::cmd {
namespace {

constexpr int64_t kMaxJobs = 1024;  // each job is a thread

// What the flags asked for, read once.
struct SweepOptions {
  SweepMode mode;
  int64_t jobs;
  absl::Duration timeout;
  std::optional<int64_t> max_points;
  std::string json, html, stdin_file, conf;
  bool keep;
  std::optional<int64_t> depth;
  std::vector<std::string> only;
  bool persistent, ignore_output, gdb;
};

SweepOptions ReadFlags() {
  const std::optional<PositiveCount> max_points = absl::GetFlag(FLAGS_max_points);
  return {absl::GetFlag(FLAGS_mode),
          absl::GetFlag(FLAGS_jobs).value,
          absl::GetFlag(FLAGS_timeout).value,
          max_points ? std::optional<int64_t>(max_points->value) : std::nullopt,
          absl::GetFlag(FLAGS_json),
          absl::GetFlag(FLAGS_html),
          absl::GetFlag(FLAGS_stdin),
          absl::GetFlag(FLAGS_conf),
          absl::GetFlag(FLAGS_keep),
          absl::GetFlag(FLAGS_depth) ? std::optional<int64_t>(absl::GetFlag(FLAGS_depth)->value)
                                     : std::nullopt,
          absl::GetFlag(FLAGS_only),
          absl::GetFlag(FLAGS_persistent),
          absl::GetFlag(FLAGS_ignore_output),
          absl::GetFlag(FLAGS_gdb)};
}

// Usage errors found before anything runs.
absl::Status CheckOptions(const SweepOptions &o) {
  if (o.jobs > kMaxJobs)
    return absl::InvalidArgumentError(absl::StrCat("--jobs ", o.jobs, ": at most ", kMaxJobs));
  if (o.depth && *o.depth > 32)
    return absl::InvalidArgumentError(absl::StrCat("--depth ", *o.depth, ": at most 32"));
  for (const std::string &m : o.only)
    if (m.empty() || m.find_first_of("|,:") != std::string::npos)
      return absl::InvalidArgumentError(
          absl::StrCat("--only '", m, "': expected module file names separated by commas"));
  if (!o.stdin_file.empty() && !IsRegularFile(o.stdin_file))
    return absl::InvalidArgumentError(absl::StrCat("--stdin ", o.stdin_file, ": no such file"));
  for (const std::string &path : {o.json, o.html}) {
    if (path.empty()) continue;
    const std::string dir = Dirname(path);
    if (access(dir.c_str(), W_OK) != 0)
      return absl::InvalidArgumentError(
          absl::StrCat("cannot write ", path, ": ", dir, ": ", strerror(errno)));
  }
  return absl::OkStatus();
}

// The sweep's working directory, under $TMPDIR or /tmp.
absl::StatusOr<std::string> MakeRoot() {
  const char *tmp = getenv("TMPDIR");
  std::string path =
      absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/allocscope-sweep-XXXXXX");
  if (mkdtemp(path.data()) == nullptr)
    return absl::UnavailableError(absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  path = RealPath(path);
  if (absl::StrContains(path, ','))
    return absl::InvalidArgumentError(
        absl::StrCat("the working directory ", path,
                     " has a ',', which ALLOCSCOPE_CONF cannot hold (set TMPDIR)"));
  return path;
}

void RemoveTree(const std::string &path) {
  // Depth first, so directories are empty when they are removed; links are not followed.
  const auto remove_one = [](const char *p, const struct stat *, int, struct FTW *) {
    remove(p);
    return 0;
  };
  nftw(path.c_str(), remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

// The file every run reads as stdin: --stdin, the sweep's own stdin saved once, or
// /dev/null when that is a terminal or closed.
absl::StatusOr<std::string> SweepStdin(const SweepOptions &o, const std::string &root) {
  if (!o.stdin_file.empty()) return RealPath(o.stdin_file);
  if (fcntl(0, F_GETFD) < 0 || isatty(0)) return std::string("/dev/null");
  const std::string path = absl::StrCat(root, "/stdin");
  const int out = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0)
    return absl::UnavailableError(absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  char buf[65536];
  ssize_t n;
  while ((n = read(0, buf, sizeof(buf))) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || write(out, buf, static_cast<size_t>(n)) != n) {
      const int err = errno;
      close(out);
      return absl::UnavailableError(
          absl::StrCat("cannot save stdin to ", path, ": ", strerror(err)));
    }
  }
  close(out);
  return path;
}

int SweepMain(std::vector<std::string> command) {
  const SweepOptions o = ReadFlags();
  if (command.empty()) {
    Complain("sweep", "no command given (allocscope sweep [FLAGS] -- CMD [ARGS...])");
    return kExitUsage;
  }
  if (absl::Status s = CheckOptions(o); !s.ok()) {
    Complain("sweep", s.message());
    return kExitUsage;
  }
  const Environment current = Environment::Current();
  const std::vector<ConfPiece> pieces = BaseConfiguration(current);
  Launch launch;
  if (const int status = PrepareLaunch("sweep", pieces, command, &launch); status != kExitOk)
    return status;
  absl::StatusOr<std::string> root = MakeRoot();
  if (!root.ok()) {
    Complain("sweep", root.status().message());
    return kExitUsage;
  }
  absl::StatusOr<Report> report = absl::UnknownError("not run");
  bool interrupted = false;
  {
    absl::StatusOr<std::string> stdin_path = SweepStdin(o, *root);
    if (!stdin_path.ok()) {
      report = stdin_path.status();
    } else {
      Launcher launcher(launch.program, command,
                        PreloadEnvironment(current, launch.preload, pieces), *stdin_path, o.timeout,
                        *root);
      InterruptWatch watch([&launcher] { launcher.runner().Stop(); });
      SweepPlan plan;
      plan.mode = o.mode;
      plan.jobs = static_cast<int>(o.jobs);
      plan.max_points = o.max_points;
      plan.conf = o.conf;
      if (o.depth) plan.depth = static_cast<int>(*o.depth);
      plan.only = o.only;
      plan.persistent = o.persistent;
      plan.ignore_output = o.ignore_output;
      plan.gdb = o.gdb;
      report = Sweep(plan, launcher, launch.program, launch.preload);
      watch.Release();
      interrupted = watch.interrupted();
    }
  }
  if (o.keep)
    Complain("sweep", absl::StrCat("runs kept in ", *root));
  else
    RemoveTree(*root);
  if (interrupted) {
    fputs("\nallocscope sweep: interrupted\n", stderr);
    return kExitInterrupted;
  }
  if (!report.ok()) {
    Complain("sweep", report.status().message());
    return kExitUsage;
  }
  fputs(ReportTable(report->points).c_str(), stdout);
  printf("%s\n", SummaryText(report->summary).c_str());
  fflush(stdout);
  if (!o.json.empty()) {
    if (absl::Status s = WriteTextFile(o.json, ReportJson(*report).Dump(1) + "\n"); !s.ok()) {
      Complain("sweep", s.message());
      return kExitUsage;
    }
  }
  if (!o.html.empty()) {
    if (absl::Status s = WriteTextFile(o.html, ReportHtml(*report)); !s.ok()) {
      Complain("sweep", s.message());
      return kExitUsage;
    }
  }
  return kExitOk;
}

}  // namespace

const Verb kSweepVerb = {
    "sweep",
    "fail CMD's allocation points one by one, report each outcome",
    "[--mode stack|nth|callsite] [--depth N] [--only MODULE,...] [--persistent] "
    "[--ignore-output] [--gdb] [--jobs N] [--timeout S] [--max-points N] [--json FILE] "
    "[--html FILE] [--conf STR] [--stdin FILE] [--keep] -- CMD [ARGS...]",
    R"(Walks CMD's allocation-failure points with fault injection and reports what
each one does to it. A baseline run (no failures; fault.record lists every call
site and call stack of the allocator) comes first. Then, in parallel jobs:
  --mode stack     (default) fault.stack:HASH,fault.times:1 fails the first
                   allocation of each distinct stack (its first --depth
                   return addresses as module+offset, default 8) the
                   baseline recorded: a wrapper's callers are told apart;
  --mode nth       fault.nth:1, :2, :3 ... fails the 1st, 2nd, 3rd ...
                   allocation, until a run in which the n-th allocation
                   never happens;
  --mode callsite  fault.callsite:SITE,fault.times:1 fails the first
                   allocation at each call site (the allocator's direct
                   caller) the baseline recorded: every caller of one
                   wrapper is the same site, so it cannot tell them apart.
--only MODULE,... makes only allocations whose stack passes through those
modules points (in every mode; the baseline is not disturbed). --persistent
fails every later allocation of the process too.

Each point is classified against the baseline (exit status, stdout and stderr
in full, and the start, exit and crash records of every process in the tree):
clean, handled (another status, or stderr differs), oom-exit (the program ended
itself by abort or exit(non-zero) with the failing call's caller still on the
stack), wrong-output (same status, stdout differs), leak (bytes allocated after
the failure still live at exit beyond what the baseline left), crash (a fatal
signal in any process: the JSON says which, with its stack from the run's own
crash record; --gdb adds a gdb re-run), hang (each thread's stack is taken,
then the process group killed after --timeout seconds) or not-reached.
--ignore-output judges by exit status and crashes only. Each injected call
site and crash stack is symbolised with addr2line.

Prints a table and the counts on stdout and a progress bar on stderr; --json
writes everything, --html a self-contained page. CMD's stdin (--stdin, else the
sweep's own stdin unless it is a terminal) is read once and replayed to every
run. --keep leaves the working directory (each run's output and fault logs) in
place. Exits 0 when the sweep ran, whatever it found; 2 on a usage error or when
the baseline itself crashed or hung; 130 when interrupted. For example:
  allocscope sweep --mode nth --json report.json -- sqlite3 :memory: <in.sql)",
    {{"mode", "stack|nth|callsite"},
     {"depth", "N"},
     {"only", "MODULE,..."},
     {"persistent", ""},
     {"ignore-output", ""},
     {"gdb", ""},
     {"jobs", "N"},
     {"timeout", "S"},
     {"max-points", "N"},
     {"json", "FILE"},
     {"html", "FILE"},
     {"conf", "STR"},
     {"stdin", "FILE"},
     {"keep", ""}},
    true,
    SweepMain,
};

}  // namespace allocscope::cmd
