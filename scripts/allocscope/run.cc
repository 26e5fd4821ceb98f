// run.cc: `allocscope run`: checks the configuration, finds CMD, and replaces itself with
// CMD under the preload (exec: CMD keeps this process's id, and its exit status is the
// command's).
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "exit_status.h"
#include "preload.h"
#include "verbs.h"

ABSL_FLAG(std::string, limit, "",
          "cap on the bytes CMD may hold, e.g. 512M (the limit: key; sizes take K, M, G)");
ABSL_FLAG(std::string, policy, "",
          "the default policy flags, e.g. nofail or retry_mayfail|kv (the policy: key)");
ABSL_FLAG(bool, stats, false,
          "print a summary of the stats on stderr at exit, and on SIGTERM, SIGINT and SIGHUP "
          "(stats_print:summary; --conf stats_print:json for the JSON)");
ABSL_FLAG(std::string, timeline, "",
          "write an HTML page plotting the charge and RSS over time against the limit, with "
          "failures, reclaim passes and waits marked, at exit (timeline_file:FILE)");
ABSL_FLAG(bool, profile, false,
          "turn on jemalloc's heap profiler (MALLOC_CONF prof:true, one sample per 512 KiB "
          "allocated) and dump a profile at exit, jeprof.PID.*.heap in the current directory");
ABSL_FLAG(bool, tree, false,
          "one limit for CMD and every process it starts, instead of one each "
          "(limit_scope:tree)");
ABSL_FLAG(bool, check, false,
          "check the configuration (and that CMD, if given, can be run), then exit "
          "without running anything");

namespace allocscope::cmd {
namespace {

// A shorthand flag's value goes into ALLOCSCOPE_CONF as one pair: a ',' would smuggle
// another pair past the flag that names it.
absl::Status CheckShorthand(absl::string_view flag, absl::string_view value) {
  if (absl::StrContains(value, ','))
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " takes one value, '", value,
                                                   "' has a ','; give more pairs with --conf"));
  return absl::OkStatus();
}

int RunMain(std::vector<std::string> command) {
  const bool check_only = absl::GetFlag(FLAGS_check);
  if (command.empty() && !check_only) {
    Complain("run", "no command given (allocscope run [FLAGS] -- CMD [ARGS...])");
    return kExitUsage;
  }
  const Environment current = Environment::Current();
  // The live page first (allocscope top, stats, ctl), so that ALLOCSCOPE_CONF or --conf
  // can turn it off with control:false.
  std::vector<ConfPiece> pieces = {{"allocscope run", "control:true"}};
  for (ConfPiece &piece : BaseConfiguration(current)) pieces.push_back(std::move(piece));
  // The shorthands' flags are named after their keys.
  struct Shorthand {
    absl::string_view key;
    std::string value;
  };
  for (const Shorthand &s : {Shorthand{"limit", absl::GetFlag(FLAGS_limit)},
                             Shorthand{"policy", absl::GetFlag(FLAGS_policy)}}) {
    if (s.value.empty()) continue;
    if (absl::Status bad = CheckShorthand(s.key, s.value); !bad.ok()) {
      Complain("run", bad.message());
      return kExitUsage;
    }
    pieces.push_back({absl::StrCat("--", s.key), absl::StrCat(s.key, ":", s.value)});
  }
  if (absl::GetFlag(FLAGS_stats)) pieces.push_back({"--stats", "stats_print:summary"});
  if (const std::string timeline = absl::GetFlag(FLAGS_timeline); !timeline.empty()) {
    if (absl::Status bad = CheckShorthand("timeline", timeline); !bad.ok()) {
      Complain("run", bad.message());
      return kExitUsage;
    }
    pieces.push_back({"--timeline", absl::StrCat("timeline_file:", timeline)});
  }
  if (absl::GetFlag(FLAGS_tree)) pieces.push_back({"--tree", "limit_scope:tree"});
  Launch launch;
  if (const int status = PrepareLaunch("run", pieces, command, &launch); status != kExitOk)
    return status;
  if (check_only) return kExitOk;
  Environment env = PreloadEnvironment(current, launch.preload, pieces);
  if (absl::GetFlag(FLAGS_profile)) {
    // jemalloc reads MALLOC_CONF when it starts, the only time prof can be switched on.
    // lg_prof_sample:19 is jemalloc's own default (a sample per 512 KiB on average);
    // prof_final dumps at exit. Pairs already in MALLOC_CONF come after ours and win.
    const std::string prof = "prof:true,prof_active:true,lg_prof_sample:19,prof_final:true";
    const std::string given = current.Get("MALLOC_CONF").value_or("");
    env.Set("MALLOC_CONF", given.empty() ? prof : absl::StrCat(prof, ",", given));
  }
  CStringArray argv(command);
  CStringArray envp(env.Entries());
  execve(launch.program.c_str(), argv.get(), envp.get());
  const int err = errno;
  Complain("run", absl::StrCat(launch.program, ": cannot execute: ", strerror(err)));
  // As a shell: a file that vanished (or names a missing interpreter) is "not found".
  return err == ENOENT ? kExitNotFound : kExitCannotExecute;
}

}  // namespace

const Verb kRunVerb = {
    "run",
    "run CMD under the preload",
    "[--limit SIZE] [--policy FLAGS] [--tree] [--stats] [--timeline FILE] [--profile] "
    "[--conf STR] [--check] -- CMD [ARGS...]",
    R"(Runs CMD with liballocscope.so preloaded (by its absolute path, so it
survives chdir and wrappers) and ALLOCSCOPE_CONF set; children inherit both.
--limit and --policy are shorthands for the limit: and policy: keys, --stats
for stats_print:summary (a short table at exit, also when SIGTERM, SIGINT or
SIGHUP ends CMD), --timeline FILE for timeline_file:FILE (an HTML plot of memory
over time), --tree for limit_scope:tree (one limit shared by CMD and every
process it starts; without it each process has a limit of its own), and --conf
adds any other key:value pairs. --profile turns on jemalloc's heap profiler
(read the jeprof.PID.*.heap files it dumps at exit with jeprof).

CMD runs with control:true: allocscope top, allocscope stats PID and
allocscope ctl PID see and steer it while it runs (--conf control:false: not).

The configuration is checked before anything runs: a bad value is reported in
the preload's own words and the exit status is 2. --check stops there. The
command warns when the preload cannot take effect: a static binary, or a
setuid/setgid one (the loader ignores LD_PRELOAD paths with a slash in
secure-execution mode).

allocscope run then becomes CMD (exec): the exit status is CMD's, or 128+N when
signal N ended it; 127 when CMD is not found and 126 when it cannot be
executed. For example:
  allocscope run --limit 64M --policy retry_mayfail --stats -- python3 -c '...')",
    {{"limit", "SIZE"}, {"policy", "FLAGS"}, {"tree", ""}, {"stats", ""}, {"timeline", "FILE"},
     {"profile", ""}, {"conf", "STR"}, {"check", ""}},
    true,
    RunMain,
};

}  // namespace allocscope::cmd
