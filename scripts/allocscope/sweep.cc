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
#include "absl/strings/strip.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "exit_status.h"
#include "flag_types.h"
#include "interrupt.h"
#include "launcher.h"
#include "paths.h"
#include "preload.h"
#include "sweep_finish.h"
#include "sweep_report.h"
#include "merge.h"
#include "replay.h"
#include "shard.h"
#include "sweeper.h"
#include "verbs.h"
#include "workdir.h"

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
ABSL_FLAG(std::string, known, "",
          "a file of point ids (one a line, '#' comments) whose failures are known: they do not "
          "make the exit status 1");
ABSL_FLAG(std::string, write_known, "",
          "write the ids of every failing point (crash, hang, leak, wrong-output) to this file, "
          "for --known");
ABSL_FLAG(std::string, junit, "", "write JUnit XML to this file: a testcase per group of points");
ABSL_FLAG(std::string, sarif, "",
          "write SARIF 2.1.0 to this file: a result per failing group, at its source line");
ABSL_FLAG(std::string, replay, "",
          "run the point with this id of the report named after the flags (sweep --replay ID "
          "REPORT.json) and report its outcome");
ABSL_FLAG(allocscope::cmd::ShardSpec, shard, {},
          "K/N: run only the points of shard K of N (split by a hash of each point's id)");
ABSL_FLAG(std::string, resume, "",
          "a report of this sweep (--json) to complete: its points are kept, the others run");
ABSL_FLAG(std::optional<allocscope::cmd::PositiveCount>, sample, std::nullopt,
          "run N points drawn at random (with --seed) from all of them; the report says so");
ABSL_FLAG(int64_t, seed, 1, "the seed of --sample's draw");
ABSL_FLAG(std::string, workdir_template, "",
          "start every run in a fresh copy of this directory (default: of the current one)");
ABSL_FLAG(bool, shared_cwd, false,
          "start every run in the current directory itself, seeing the files earlier runs left");

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
  std::string known, write_known, junit, sarif, replay, resume, workdir_template;
  ShardSpec shard;
  std::optional<int64_t> sample;
  int64_t seed;
  bool shared_cwd;
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
          absl::GetFlag(FLAGS_known),
          absl::GetFlag(FLAGS_write_known),
          absl::GetFlag(FLAGS_junit),
          absl::GetFlag(FLAGS_sarif),
          absl::GetFlag(FLAGS_replay),
          absl::GetFlag(FLAGS_resume),
          absl::GetFlag(FLAGS_workdir_template),
          absl::GetFlag(FLAGS_shard),
          absl::GetFlag(FLAGS_sample) ? std::optional<int64_t>(absl::GetFlag(FLAGS_sample)->value)
                                      : std::nullopt,
          absl::GetFlag(FLAGS_seed),
          absl::GetFlag(FLAGS_shared_cwd),
          absl::GetFlag(FLAGS_depth) ? std::optional<int64_t>(absl::GetFlag(FLAGS_depth)->value)
                                     : std::nullopt,
          absl::GetFlag(FLAGS_only),
          absl::GetFlag(FLAGS_persistent),
          absl::GetFlag(FLAGS_ignore_output),
          absl::GetFlag(FLAGS_gdb)};
}

bool IsDirectory(const std::string &path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
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
  if (!o.known.empty() && !IsRegularFile(o.known))
    return absl::InvalidArgumentError(absl::StrCat("--known ", o.known, ": no such file"));
  if (!o.resume.empty() && !IsRegularFile(o.resume))
    return absl::InvalidArgumentError(absl::StrCat("--resume ", o.resume, ": no such file"));
  if (!o.workdir_template.empty() && !IsDirectory(o.workdir_template))
    return absl::InvalidArgumentError(
        absl::StrCat("--workdir-template ", o.workdir_template, ": not a directory"));
  if (!o.workdir_template.empty() && o.shared_cwd)
    return absl::InvalidArgumentError(
        "--workdir-template and --shared-cwd: each run starts in a copy, or all share one");
  if (o.seed < 0)
    return absl::InvalidArgumentError(absl::StrCat("--seed ", o.seed, ": expected 0 or more"));
  if (!o.resume.empty() && (o.shard.count > 0 || o.sample))
    return absl::InvalidArgumentError(
        "--resume takes the selection of the report it completes: no --shard or --sample");
  for (const std::string &path : {o.json, o.html, o.junit, o.sarif, o.write_known}) {
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

std::string CurrentDirectory() {
  char buf[PATH_MAX];
  return getcwd(buf, sizeof(buf)) != nullptr ? std::string(buf) : std::string(".");
}

ReportOutputs Outputs(const SweepOptions &o) {
  return {o.json, o.html, o.junit, o.sarif, o.write_known, o.known};
}

// How the runs see the working directory: a copy per run of the current directory or of
// --workdir-template, or (--shared-cwd) the directory itself.
absl::StatusOr<Isolation> ChooseIsolation(const SweepOptions &o, const std::string &root) {
  Isolation iso;
  if (o.shared_cwd) {
    iso.source = CurrentDirectory();
    return iso;
  }
  iso.kind = o.workdir_template.empty() ? "copy" : "template";
  iso.source = o.workdir_template.empty() ? CurrentDirectory() : RealPath(o.workdir_template);
  absl::StatusOr<uint64_t> bytes = MeasureWorkdir(iso.source, root);
  if (!bytes.ok()) return bytes.status();
  iso.bytes = *bytes;
  return iso;
}

int SweepMain(std::vector<std::string> command) {
  SweepOptions o = ReadFlags();
  if (!command.empty() && command[0] == "merge" && o.replay.empty())
    return MergeMain(std::vector<std::string>(command.begin() + 1, command.end()), Outputs(o));
  // --replay ID REPORT.json: the command, its configuration and stdin come from the report.
  std::optional<Json> replay_report, replay_point;
  if (!o.replay.empty()) {
    if (command.size() != 1) {
      Complain("sweep", "--replay ID takes one report: allocscope sweep --replay ID REPORT.json");
      return kExitUsage;
    }
    absl::StatusOr<Json> r = ReadReport(command[0]);
    absl::StatusOr<Json> p = r.ok() ? FindPoint(*r, o.replay, command[0]) : r.status();
    if (!p.ok()) {
      Complain("sweep", p.status().message());
      return kExitUsage;
    }
    replay_report = *std::move(r);
    replay_point = *std::move(p);
    command.clear();
    for (const Json &arg : replay_report->find("command")->as_array())
      command.push_back(arg.is_string() ? arg.as_string() : "");
    if (o.conf.empty()) o.conf = JsonText(*replay_report, "conf");
    if (o.stdin_file.empty()) o.stdin_file = JsonText(*replay_report, "stdin");
    if (o.stdin_file.empty()) o.stdin_file = "/dev/null";
    if (const Json *iso = replay_report->find("isolation"); iso != nullptr) {
      const std::string kind = JsonText(*iso, "kind");
      if (kind == "shared") o.shared_cwd = true;
      if (kind == "template") o.workdir_template = JsonText(*iso, "source");
    }
  }
  if (command.empty()) {
    Complain("sweep", "no command given (allocscope sweep [FLAGS] -- CMD [ARGS...])");
    return kExitUsage;
  }
  if (absl::Status s = CheckOptions(o); !s.ok()) {
    Complain("sweep", s.message());
    return kExitUsage;
  }
  // --resume: the report's points are kept; only the others run.
  std::optional<Json> resumed;
  if (!o.resume.empty()) {
    absl::StatusOr<Json> r = ReadReport(o.resume);
    if (!r.ok()) {
      Complain("sweep", absl::StrCat("--resume ", r.status().message()));
      return kExitUsage;
    }
    Json args{Json::Array{}};
    for (const std::string &a : command) args.push(a);
    if (r->find("command")->Dump() != args.Dump() ||
        JsonText(*r, "mode") != SweepModeName(o.mode)) {
      Complain("sweep", absl::StrCat("--resume ", o.resume, ": a sweep of another command or mode "
                                     "(resume with the same --mode and CMD)"));
      return kExitUsage;
    }
    // The same stdin as the sweep it completes, unless --stdin says otherwise.
    if (o.stdin_file.empty() && !JsonText(*r, "stdin").empty())
      o.stdin_file = JsonText(*r, "stdin");
    resumed = *std::move(r);
  }
  const Environment current = Environment::Current();
  std::vector<ConfPiece> pieces = BaseConfiguration(current);
  if (replay_report && absl::GetFlag(FLAGS_conf).empty() && !o.conf.empty())
    pieces.push_back({"the report's conf", o.conf});
  Launch launch;
  if (const int status = PrepareLaunch("sweep", pieces, command, &launch); status != kExitOk)
    return status;
  // Runs start in other directories: the program by an absolute path.
  if (!launch.program.empty() && launch.program[0] != '/') {
    absl::string_view relative = launch.program;
    while (absl::ConsumePrefix(&relative, "./")) {
    }
    launch.program = absl::StrCat(CurrentDirectory(), "/", relative);
  }
  absl::StatusOr<std::string> root = MakeRoot();
  if (!root.ok()) {
    Complain("sweep", root.status().message());
    return kExitUsage;
  }
  absl::StatusOr<Isolation> isolation = ChooseIsolation(o, *root);
  if (!isolation.ok()) {
    RemoveTree(*root);
    Complain("sweep", isolation.status().message());
    return kExitUsage;
  }
  absl::StatusOr<Report> report = absl::UnknownError("not run");
  std::optional<std::string> kept_stdin;
  bool interrupted = false;
  {
    absl::StatusOr<std::string> stdin_path = SweepStdin(o, *root);
    if (!stdin_path.ok()) {
      report = stdin_path.status();
    } else {
      Launcher launcher(launch.program, command,
                        PreloadEnvironment(current, launch.preload, pieces), *stdin_path, o.timeout,
                        *root);
      if (isolation->kind != "shared") launcher.CopyWorkdirFrom(isolation->source, *root);
      InterruptWatch watch([&launcher] { launcher.runner().Stop(); });
      if (replay_point) {
        SweepPlan replay_plan;
        if (const Json *pairs = replay_point->find("fault"); pairs != nullptr && pairs->is_array()) {
          std::vector<std::string> fault;
          for (const Json &pair : pairs->as_array())
            if (pair.is_string()) fault.push_back(pair.as_string());
          ApplySelectionPairs(fault, &replay_plan);
        }
        const Json *ignore = replay_report->find("ignore_output");
        replay_plan.ignore_output =
            o.ignore_output || (ignore != nullptr && ignore->is_bool() && ignore->as_bool());
        absl::StatusOr<ReplayResult> r = ReplayPoint(replay_plan, launcher, *replay_point);
        watch.Release();
        RemoveTree(*root);
        if (watch.interrupted()) return kExitInterrupted;
        if (!r.ok()) {
          Complain("sweep", r.status().message());
          return kExitUsage;
        }
        const std::string was = JsonText(*replay_point, "outcome");
        printf("%s: %s%s\n", o.replay.c_str(), r->text.c_str(),
               r->outcome == was ? ", as in the sweep" : absl::StrCat("; the sweep found ", was).c_str());
        if (!r->matched) {
          std::vector<std::string> fault;
          for (const Json &f : replay_point->find("fault")->as_array()) fault.push_back(f.as_string());
          printf("%s: %s never matched: no allocation was failed\n", o.replay.c_str(),
                 absl::StrJoin(fault, ",").c_str());
        }
        return r->outcome == was ? kExitOk : 1;
      }
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
      plan.filter.shard = o.shard;
      plan.sample = o.sample;
      plan.seed = static_cast<uint64_t>(o.seed);
      if (resumed) {
        for (const Json &p : resumed->find("points")->as_array()) {
          plan.filter.skip.insert(JsonText(p, "id"));
          // nth: the point the program never reached ends the sweep; nothing past it runs.
          if (JsonText(p, "outcome") == "not-reached" && o.mode == SweepMode::kNth)
            if (const Json *n = p.find("point"); n != nullptr && n->is_int())
              plan.nth_end = plan.nth_end ? std::min(*plan.nth_end, n->as_int()) : n->as_int();
        }
      }
      report = Sweep(plan, launcher, launch.program, launch.preload);
      watch.Release();
      interrupted = watch.interrupted();
      // The replay lines read stdin from a file that outlives the sweep: --stdin's, or
      // the saved copy next to the report.
      if (report.ok() && *stdin_path != "/dev/null" && o.stdin_file.empty()) {
        for (const std::string &out : {o.json, o.html, o.junit, o.sarif}) {
          if (out.empty()) continue;
          const std::string copy = absl::StrCat(out, ".stdin");
          if (WriteTextFile(copy, ReadWholeFile(*stdin_path).value_or("")).ok())
            kept_stdin = RealPath(copy);
          break;
        }
      } else if (report.ok()) {
        kept_stdin = *stdin_path;
      }
    }
  }
  if (o.keep)
    Complain("sweep", absl::StrCat("runs kept in ", *root));
  else
    RemoveTree(*root);
  if (!report.ok()) {
    if (interrupted) {
      fputs("\nallocscope sweep: interrupted\n", stderr);
      return kExitInterrupted;
    }
    Complain("sweep", report.status().message());
    return kExitUsage;
  }
  report->allocscope = RealPath("/proc/self/exe");
  report->cwd = CurrentDirectory();
  report->stdin_file = kept_stdin;
  report->isolation = *isolation;
  if (o.shard.count > 0) {
    report->selection.shard_index = o.shard.index;
    report->selection.shard_count = o.shard.count;
  }
  if (o.sample) {
    report->selection.sample = o.sample;
    report->selection.seed = o.seed;
  }
  if (resumed) {
    report->selection.resumed_from = RealPath(o.resume);
    report->resumed = resumed->find("points")->as_array();
    report->selection.resumed_points = static_cast<int64_t>(report->resumed.size());
  }
  return FinishReport(ReportJson(*report), Outputs(o), interrupted || !report->complete);
}

}  // namespace

const Verb kSweepVerb = {
    "sweep",
    "fail CMD's allocation points one by one, report each outcome",
    "[--mode stack|nth|callsite] [--depth N] [--only MODULE,...] [--persistent] "
    "[--ignore-output] [--gdb] [--jobs N] [--timeout S] [--max-points N] [--json FILE] "
    "[--html FILE] [--junit FILE] [--sarif FILE] [--known FILE] [--write-known FILE] "
    "[--shard K/N] [--sample N [--seed S]] [--resume FILE] [--workdir-template DIR | "
    "--shared-cwd] [--conf STR] [--stdin FILE] [--keep] -- CMD [ARGS...]",
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

Prints a table on stdout, one row per group of points (same outcome and same
failing place: a crash's stack, else the call site), failing groups first, then
the counts; a progress bar goes to stderr. --json writes everything (its
"schema" is documented in README.md), --html a self-contained page (groups,
filterable, with each group's replay command), --junit JUnit XML (a testcase per
group), --sarif SARIF 2.1.0 (a result per failing group at its source line).

Every point has a stable id (nth-7, callsite-<hash>: from the mode and the
fault.* pairs, never the run order) and a replay command line that reproduces it
alone; --replay ID REPORT.json runs that point again the same way and says
whether the outcome is the report's. A fault.* key that failed nothing is
reported as not-reached.

CI: the exit status is 1 when a crash, hang, leak or wrong-output point is found
whose id --known FILE does not list (--write-known FILE writes the failing ids).

Isolation: each run (the baseline and a replay too) starts in a fresh copy of
the current directory (at most 64 MiB and 10000 files; past that the sweep
stops with a message), or of --workdir-template DIR; --shared-cwd runs them all
in the current directory. CMD's stdin (--stdin, else the sweep's own stdin
unless it is a terminal) is read once into a file and every run reads that
file, so allocation counts match between runs and replays; the saved copy is
written beside the report (REPORT.stdin) for the replay lines.

Scale: --shard K/N runs the points whose id hashes to shard K of N;
"allocscope sweep merge OUT.json IN.json..." merges the shards' reports (or a
report and its resumption); --resume REPORT.json runs only the points that
report lacks (after a Ctrl-C, which writes the partial report); --sample N
--seed S runs N points drawn at random, and the report says so.

--keep leaves the working directory (each run's output and fault logs) in
place. Exits 130 when interrupted. For example:
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
     {"keep", ""},
     {"known", "FILE"},
     {"write-known", "FILE"},
     {"junit", "FILE"},
     {"sarif", "FILE"},
     {"replay", "ID"},
     {"shard", "K/N"},
     {"resume", "FILE"},
     {"sample", "N"},
     {"seed", "S"},
     {"workdir-template", "DIR"},
     {"shared-cwd", ""}},
    true,
    SweepMain,
};

}  // namespace allocscope::cmd
