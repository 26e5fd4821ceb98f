// sweeper.cc: see sweeper.h.
#include "sweeper.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/container/flat_hash_set.h"
#include "coverage.h"
#include "gdb.h"
#include "options.h"
#include "paths.h"
#include "point_runner.h"
#include "progress.h"
#include "records.h"
#include "symbolize.h"

namespace allocscope::cmd {
namespace {

constexpr size_t kBacktraceFrames = 8;  // injection frames kept per point

// A stack the baseline recorded (fault.record's "stack" lines, merged over processes).
struct StackPoint {
  std::string stack;
  std::vector<std::string> frames;
  uint64_t count = 0;
};

// What the classifier needs of the baseline besides the report's Baseline.
struct BaselineExtra {
  RunEvidence evidence;
  std::vector<StackPoint> stacks;
};

// The pairs that decide which allocations are points and how they are named (--depth,
// --only): the baseline's and every point's, and part of a point's `fault` (its replay).
std::vector<std::string> SelectionPairs(const SweepPlan &o) {
  std::vector<std::string> pairs;
  if (o.depth) pairs.push_back(absl::StrCat("fault.depth:", *o.depth));
  if (!o.only.empty()) pairs.push_back(absl::StrCat("fault.only:", absl::StrJoin(o.only, "|")));
  return pairs;
}

// The pairs every run gets: its fault.events file and the selection pairs.
std::vector<std::string> CommonPairs(const SweepPlan &o, const std::string &dir) {
  std::vector<std::string> pairs = {absl::StrCat("fault.events:", dir, "/events.%p.jsonl")};
  for (std::string &pair : SelectionPairs(o)) pairs.push_back(std::move(pair));
  return pairs;
}

// A run's evidence: full output, injections and events from its directory.
absl::StatusOr<RunEvidence> Evidence(const std::string &dir, const RunRecord &run) {
  RunEvidence e;
  e.exit = run.exit;
  e.stdout_text = ReadWholeFile(absl::StrCat(dir, "/stdout")).value_or("");
  e.stderr_text = ReadWholeFile(absl::StrCat(dir, "/stderr")).value_or("");
  absl::StatusOr<std::vector<Injection>> injections = ReadInjections(dir, "fault");
  if (!injections.ok()) return injections.status();
  e.injections = *std::move(injections);
  absl::StatusOr<std::vector<EventRecord>> events = ReadEvents(dir, "events");
  if (!events.ok()) return events.status();
  e.events = *std::move(events);
  return e;
}

// ---- the baseline ---------------------------------------------------------------------

absl::StatusOr<Baseline> RunBaseline(const SweepPlan &o, Launcher &launcher, BaselineExtra *extra) {
  absl::StatusOr<std::string> dir = launcher.NewDir("baseline");
  if (!dir.ok()) return dir.status();
  std::vector<std::string> pairs = CommonPairs(o, *dir);
  pairs.push_back(absl::StrCat("fault.record:", *dir, "/record.%p.jsonl"));
  pairs.push_back("fault.track_all:true");
  absl::StatusOr<RunRecord> run = launcher.Run(*dir, pairs);
  if (!run.ok()) return run.status();
  if (run->exit.timed_out)
    return absl::FailedPreconditionError(
        absl::StrCat("the baseline run (no failures) did not finish in ",
                     absl::ToDoubleSeconds(launcher.timeout()), " s"));
  if (run->exit.signal)
    return absl::FailedPreconditionError(
        absl::StrCat("the baseline run (no failures) was killed by ", SignalName(*run->exit.signal),
                     run->stderr_tail.empty() ? "" : absl::StrCat(":\n", run->stderr_tail)));
  absl::StatusOr<std::vector<ProcessRecords>> files = ReadSiteRecords(*dir, "record");
  if (!files.ok()) return files.status();
  absl::StatusOr<RunEvidence> evidence = Evidence(*dir, *run);
  if (!evidence.ok()) return evidence.status();
  extra->evidence = *std::move(evidence);
  absl::flat_hash_map<std::string, size_t> stack_index;
  for (const ProcessRecords &file : *files)
    for (const StackRecord &r : file.stacks) {
      auto [it, added] = stack_index.try_emplace(r.stack, extra->stacks.size());
      if (added) extra->stacks.push_back({r.stack, r.frames, 0});
      extra->stacks[it->second].count += r.count;
    }
  Baseline baseline;
  baseline.run = *std::move(run);
  baseline.recorded = !files->empty();
  absl::flat_hash_map<std::string, size_t> index;  // callsite -> sites[i]
  for (const ProcessRecords &file : *files) {
    uint64_t made = 0;
    for (const SiteRecord &r : file.sites) {
      auto [it, added] = index.try_emplace(r.callsite, baseline.sites.size());
      if (added) baseline.sites.push_back({r.callsite, r.module, 0, std::nullopt, std::nullopt});
      baseline.sites[it->second].count += r.count;
      made += r.count;
    }
    if (!file.sites.empty() && (!baseline.allocations || made > *baseline.allocations))
      baseline.allocations = made;
  }
  return baseline;
}

// The program's own call sites first, then the libraries', each by module and offset.
void OrderSites(std::vector<Site> &sites, const std::string &program) {
  const std::string exe = RealPath(program);
  using Key = std::tuple<bool, std::string, int64_t>;
  std::vector<std::pair<Key, Site>> keyed;
  for (Site &s : sites) {
    std::string_view module = s.callsite;  // the engine's parser speaks std::string_view
    uintptr_t offset = 0;
    const bool parsed = parse_callsite(s.callsite, &module, &offset);
    keyed.emplace_back(Key{RealPath(s.module) != exe, std::string(module),
                           parsed ? static_cast<int64_t>(offset) : int64_t{-1}},
                       std::move(s));
  }
  std::stable_sort(keyed.begin(), keyed.end(),
                   [](const auto &a, const auto &b) { return a.first < b.first; });
  sites.clear();
  for (auto &[key, site] : keyed) sites.push_back(std::move(site));
}

// The program's own stacks first (those with a frame in it), then by their frames.
void OrderStacks(std::vector<StackPoint> &stacks, const std::string &program) {
  const std::string exe = absl::StrCat(Basename(RealPath(program)), "+0x");
  const auto in_program = [&](const StackPoint &s) {
    return std::any_of(s.frames.begin(), s.frames.end(),
                       [&](const std::string &f) { return absl::StartsWith(f, exe); });
  };
  std::stable_sort(stacks.begin(), stacks.end(), [&](const StackPoint &a, const StackPoint &b) {
    const bool pa = in_program(a), pb = in_program(b);
    if (pa != pb) return pa;
    return a.frames < b.frames;
  });
}

// ---- the points -------------------------------------------------------------------------

// One failure point: CMD with `fault`, a fault.log and fault.events of its own, judged
// against the baseline (outcome.h).
absl::StatusOr<Point> RunPoint(const SweepPlan &o, Launcher &launcher,
                               const BaselineExtra &baseline, int64_t key, std::string label,
                               std::vector<std::string> fault,
                               std::optional<std::string> callsite) {
  absl::StatusOr<std::string> dir = launcher.NewDir(absl::StrReplaceAll(label, {{" ", "-"}}));
  if (!dir.ok()) return dir.status();
  // `fault` is all a replay needs (selection, the point, persistence: PointFault).
  std::vector<std::string> pairs = {absl::StrCat("fault.events:", *dir, "/events.%p.jsonl")};
  pairs.insert(pairs.end(), fault.begin(), fault.end());
  pairs.push_back(absl::StrCat("fault.log:", *dir, "/fault.%p.jsonl"));
  absl::StatusOr<RunRecord> run = launcher.Run(*dir, pairs);
  if (!run.ok()) return run.status();
  absl::StatusOr<RunEvidence> evidence = Evidence(*dir, *run);
  if (!evidence.ok()) return evidence.status();
  Point p;
  p.key = key;
  p.label = std::move(label);
  p.fault = std::move(fault);
  p.outcome = Classify(*evidence, baseline.evidence, o.ignore_output, &p.findings);
  p.callsite =
      evidence->injections.empty() ? std::move(callsite) : evidence->injections.front().callsite;
  p.injections = std::move(evidence->injections);
  p.run = *std::move(run);
  return p;
}

// The progress bar's total: the sites, or in nth mode the baseline's allocations and
// the not-reached point after them, at most --max-points.
std::optional<int64_t> ExpectedPoints(const SweepPlan &o, const Baseline &baseline, size_t sites) {
  if (o.mode != SweepMode::kNth) return static_cast<int64_t>(sites);
  std::optional<int64_t> total;
  if (baseline.allocations && *baseline.allocations > 0)
    total = static_cast<int64_t>(*baseline.allocations) + 1;
  if (o.max_points && (!total || *o.max_points < *total)) total = o.max_points;
  return total;
}

// ---- symbols ------------------------------------------------------------------------------

void Symbolize(std::vector<Point> &points, Baseline &baseline, Symbolizer &symbolizer) {
  for (const Site &s : baseline.sites) symbolizer.Learn(s.module);
  for (const Point &p : points)
    for (const Injection &in : p.injections)
      if (in.module) symbolizer.Learn(*in.module);
  std::vector<std::string> frames;
  for (const Site &s : baseline.sites) frames.push_back(s.callsite);
  for (const Point &p : points) {
    frames.insert(frames.end(), p.findings.crash_stack.begin(), p.findings.crash_stack.end());
    for (const ThreadStack &t : p.findings.threads)
      frames.insert(frames.end(), t.frames.begin(), t.frames.end());
    if (p.callsite) frames.push_back(*p.callsite);
    for (const Injection &in : p.injections) {
      if (in.callsite) frames.push_back(*in.callsite);
      for (size_t i = 0; i < in.backtrace.size() && i < kBacktraceFrames; ++i)
        frames.push_back(in.backtrace[i]);
    }
  }
  symbolizer.Prepare(frames);
  for (Site &s : baseline.sites) {
    const Symbol symbol = symbolizer.Lookup(s.callsite);
    s.function = symbol.function;
    s.source = symbol.source;
  }
  for (Point &p : points) {
    for (const std::string &frame : p.findings.crash_stack)
      p.findings.crash_symbols.push_back(symbolizer.Lookup(frame));
    for (ThreadStack &t : p.findings.threads)
      for (const std::string &frame : t.frames) t.symbols.push_back(symbolizer.Lookup(frame));
    if (p.callsite) {
      Symbol symbol = symbolizer.Lookup(*p.callsite);
      p.function = symbol.function;
      p.source = symbol.source;
      p.inlined = std::move(symbol.inlined);
    }
    for (const Injection &in : p.injections) {
      std::vector<Symbol> symbols;
      for (size_t i = 0; i < in.backtrace.size() && i < kBacktraceFrames; ++i)
        symbols.push_back(symbolizer.Lookup(in.backtrace[i]));
      p.injection_frames.push_back(std::move(symbols));
    }
  }
}

Summary Summarize(const std::vector<Point> &points, const Baseline &baseline, int64_t runs,
                  absl::Duration elapsed) {
  Summary s;
  s.points = static_cast<int64_t>(points.size());
  for (const Point &p : points) ++s.counts[static_cast<int>(p.outcome)];
  s.runs = runs;
  s.sweep_seconds = RoundSeconds(elapsed, 3);
  if (elapsed > absl::ZeroDuration())
    s.runs_per_second =
        std::round(static_cast<double>(s.points) / absl::ToDoubleSeconds(elapsed) * 100) / 100;
  s.baseline_exit_status = baseline.run.exit.exit_status;
  s.baseline_seconds = RoundSeconds(baseline.run.exit.duration, 4);
  return s;
}

}  // namespace

absl::StatusOr<Report> Sweep(const SweepPlan &o, Launcher &launcher, const std::string &program,
                             const std::string &preload) {
  fputs("allocscope sweep: running the baseline (no failures)\n", stderr);
  BaselineExtra extra;
  absl::StatusOr<Baseline> baseline_or = RunBaseline(o, launcher, &extra);
  if (!baseline_or.ok()) return baseline_or.status();
  Baseline &baseline = *baseline_or;
  OrderSites(baseline.sites, program);
  OrderStacks(extra.stacks, program);
  std::vector<Site> sites = baseline.sites;
  std::vector<StackPoint> stacks = extra.stacks;
  if (o.mode != SweepMode::kNth && !baseline.recorded)
    return absl::FailedPreconditionError(
        absl::StrCat("the baseline wrote no fault.record: the preload did not take effect, ",
                     preload, " has no fault injection, or CMD ended in _exit"));
  // The points to run, by key (the n of nth, a site's number): those --shard and
  // --resume leave, then --sample's draw, then --max-points.
  // Each point's fault pairs, all a replay needs, and what its id is made of
  // (sweep_report.h PointId): the selection pairs, the point's own, persistence.
  const auto point_fault = [&](std::vector<std::string> own) {
    std::vector<std::string> fault = SelectionPairs(o);
    fault.insert(fault.end(), own.begin(), own.end());
    if (o.persistent) fault.push_back("fault.persistent:true");
    return fault;
  };
  const auto nth_fault = [&](int64_t n) { return point_fault({absl::StrCat("fault.nth:", n)}); };
  const auto site_fault = [&](int64_t i) {
    return point_fault(CallsiteFault(sites[static_cast<size_t>(i - 1)].callsite));
  };
  const auto stack_fault = [&](int64_t i) {
    const StackPoint &stack = stacks[static_cast<size_t>(i - 1)];
    // The stack's first frame is its call site: the preload tests that first, so only
    // allocations from there pay for unwinding (policy/fault.h).
    std::vector<std::string> own = {absl::StrCat("fault.stack:", stack.stack)};
    if (!stack.frames.empty() && !absl::StartsWith(stack.frames.front(), "0x"))
      own.push_back(absl::StrCat("fault.callsite:", stack.frames.front()));
    own.push_back("fault.times:1");
    return point_fault(std::move(own));
  };
  const auto nth_id = [&](int64_t n) { return PointId("nth", nth_fault(n)); };
  std::optional<std::vector<int64_t>> keys;  // nullopt: nth, 1, 2, ... until not reached
  if (o.mode == SweepMode::kCallsite) {
    keys.emplace();
    for (int64_t i = 1; i <= static_cast<int64_t>(sites.size()); ++i)
      if (o.filter.Accepts(PointId("callsite", site_fault(i)))) keys->push_back(i);
  } else if (o.mode == SweepMode::kStack) {
    keys.emplace();
    for (int64_t i = 1; i <= static_cast<int64_t>(stacks.size()); ++i)
      if (o.filter.Accepts(PointId("stack", stack_fault(i)))) keys->push_back(i);
  } else if (o.sample || o.nth_end) {
    if (!baseline.allocations && !o.nth_end)
      return absl::FailedPreconditionError(
          "--sample in nth mode draws from the baseline's allocations, and the baseline "
          "recorded none");
    const int64_t end =
        o.nth_end ? *o.nth_end : static_cast<int64_t>(*baseline.allocations) + 1;
    keys.emplace();
    for (int64_t n = 1; n < end; ++n)
      if (o.filter.Accepts(nth_id(n))) keys->push_back(n);
  }
  if (keys && o.sample) {
    std::vector<int64_t> drawn;
    for (const int64_t i : SampleIndices(static_cast<int64_t>(keys->size()), *o.sample, o.seed))
      drawn.push_back((*keys)[static_cast<size_t>(i)]);
    keys = std::move(drawn);
  }
  if (keys && o.max_points && static_cast<int64_t>(keys->size()) > *o.max_points)
    keys->resize(static_cast<size_t>(*o.max_points));
  // nth without a list: the n the filter accepts, found as the runner asks for them.
  absl::Mutex nth_mu;
  std::vector<int64_t> nth_keys;
  int64_t nth_next = 1;
  const auto nth_key = [&](int64_t i) {
    absl::MutexLock lock(&nth_mu);
    while (static_cast<int64_t>(nth_keys.size()) < i) {
      if (o.filter.Accepts(nth_id(nth_next))) nth_keys.push_back(nth_next);
      ++nth_next;
    }
    return nth_keys[static_cast<size_t>(i - 1)];
  };
  std::optional<int64_t> total;
  if (keys) {
    total = static_cast<int64_t>(keys->size());
  } else {
    total = ExpectedPoints(o, baseline, sites.size());
    if (total && (o.filter.shard.count > 1 || !o.filter.skip.empty())) {
      int64_t accepted = 0;
      for (int64_t n = 1; n <= *total; ++n) accepted += o.filter.Accepts(nth_id(n)) ? 1 : 0;
      total = accepted;
    }
  }
  Progress progress(stderr, total);
  progress.Note(absl::StrCat("baseline: exit status ", baseline.run.exit.exit_status.value_or(-1),
                             " in ", RoundSeconds(baseline.run.exit.duration, 4), " s, ",
                             baseline.sites.size(), " call sites, ", extra.stacks.size(),
                             " stacks, ",
                             baseline.allocations ? absl::StrCat(*baseline.allocations) : "?",
                             " allocations; ", SweepModeName(o.mode), " mode, about ",
                             total ? absl::StrCat(*total) : "?", " points, ", o.jobs, " jobs"));
  const absl::Time start = absl::Now();
  const auto run_nth = [&](int64_t n) {
    return RunPoint(o, launcher, extra, n, absl::StrCat("nth ", n), nth_fault(n), std::nullopt);
  };
  const auto run_site = [&](int64_t i) {
    const std::string &site = sites[static_cast<size_t>(i - 1)].callsite;
    return RunPoint(o, launcher, extra, i, absl::StrCat("site ", i), site_fault(i), site);
  };
  const auto run_stack = [&](int64_t i) {
    const StackPoint &stack = stacks[static_cast<size_t>(i - 1)];
    return RunPoint(o, launcher, extra, i, absl::StrCat("stack ", i), stack_fault(i),
                    stack.frames.empty() ? std::nullopt
                                         : std::optional<std::string>(stack.frames.front()));
  };
  absl::StatusOr<std::vector<Point>> points_or;
  if (!keys) {
    points_or = RunPoints(
        o.max_points, [&](int64_t i) { return run_nth(nth_key(i)); }, o.jobs, true, progress,
        launcher.runner());
  } else {
    points_or = RunPoints(
        static_cast<int64_t>(keys->size()),
        [&](int64_t i) {
          const int64_t key = (*keys)[static_cast<size_t>(i - 1)];
          switch (o.mode) {
            case SweepMode::kNth: return run_nth(key);
            case SweepMode::kCallsite: return run_site(key);
            case SweepMode::kStack: break;
          }
          return run_stack(key);
        },
        o.jobs, o.mode == SweepMode::kNth && !o.sample, progress, launcher.runner());
  }
  progress.Finish();
  const absl::Duration elapsed = absl::Now() - start;
  if (!points_or.ok()) return points_or.status();
  std::vector<Point> &points = *points_or;
  if (o.mode == SweepMode::kNth && !points.empty() &&
      points.front().outcome == Outcome::kNotReached)
    progress.Note(absl::StrCat("no failure was injected at the first allocation: does ", preload,
                               " support fault injection?"));
  // Interrupted: the points that finished make a partial report. The crash stacks come
  // from the runs' own crash records (outcome.h); gdb only if asked.
  const bool interrupted = launcher.runner().stopped();
  if (!interrupted && o.gdb) {
    // A stop while gdb runs ends the backtraces, not the report.
    if (absl::Status s = AddCrashBacktraces(launcher, points, o.jobs, progress);
        !s.ok() && !launcher.runner().stopped())
      return s;
  }
  progress.Note(absl::StrCat("symbolising the call sites of ", points.size(), " points"));
  Symbolizer symbolizer(program);
  Symbolize(points, baseline, symbolizer);
  for (const std::string &note : symbolizer.notes()) progress.Note(note);
  // A fault key that failed nothing says so, rather than passing for a clean run.
  int64_t unmatched = 0;
  for (const Point &p : points) unmatched += p.injections.empty() ? 1 : 0;
  if (unmatched > 0 && o.mode == SweepMode::kCallsite)
    progress.Note(absl::StrCat(unmatched, " point", unmatched == 1 ? "'s" : "s'",
                               " fault.callsite never matched an allocation (not-reached)"));
  // Coverage: the allocation calls in the program's code against the frames runs went
  // through (a strdup's call site is libc's; the program's call is a frame above it).
  absl::flat_hash_set<std::string> failed, executed;
  for (const Site &site : baseline.sites) executed.insert(site.callsite);
  for (const Point &p : points)
    for (const Injection &in : p.injections) {
      if (in.callsite) failed.insert(*in.callsite);
      failed.insert(in.backtrace.begin(), in.backtrace.end());
    }
  executed.insert(failed.begin(), failed.end());
  // The points the baseline knows of: its call sites, its stacks, or in nth mode its
  // allocations and the point past the last (the run that reaches none).
  std::optional<int64_t> known;
  if (o.mode == SweepMode::kCallsite)
    known = static_cast<int64_t>(baseline.sites.size());
  else if (o.mode == SweepMode::kStack)
    known = static_cast<int64_t>(extra.stacks.size());
  else if (baseline.allocations)
    known = static_cast<int64_t>(*baseline.allocations) + 1;
  // The modules scanned: the program, and those --only names (found by the paths the
  // baseline's call sites gave; a module no allocation came from has nothing reached).
  std::vector<std::string> scanned = {RealPath(program)};
  for (const std::string &name : o.only)
    for (const Site &site : baseline.sites)
      if (Basename(site.module) == name &&
          std::find(scanned.begin(), scanned.end(), site.module) == scanned.end()) {
        scanned.push_back(site.module);
        break;
      }
  progress.Note("scanning the program for allocation calls");
  std::optional<Json> coverage = CoverageJson(static_cast<int64_t>(points.size()), known,
                                              scanned, failed, executed, symbolizer);
  Report report;
  report.coverage = std::move(coverage);
  report.notes = symbolizer.notes();
  report.complete = !interrupted && !launcher.runner().stopped();
  report.command = launcher.command();
  report.program_module = Basename(RealPath(program));
  report.mode = std::string(SweepModeName(o.mode));
  report.library = preload;
  report.conf = o.conf;
  report.ignore_output = o.ignore_output;
  report.jobs = o.jobs;
  report.timeout = absl::ToDoubleSeconds(launcher.timeout());
  report.max_points = o.max_points;
  report.summary = Summarize(points, baseline, launcher.runs(), elapsed);
  report.baseline = std::move(baseline);
  report.points = std::move(points);
  return report;
}

void ApplySelectionPairs(const std::vector<std::string> &pairs, SweepPlan *plan) {
  for (const std::string &pair : pairs) {
    absl::string_view value = pair;
    int depth;
    if (absl::ConsumePrefix(&value, "fault.depth:") && absl::SimpleAtoi(value, &depth))
      plan->depth = depth;
    else if (absl::ConsumePrefix(&value, "fault.only:"))
      plan->only = absl::StrSplit(value, '|', absl::SkipEmpty());
  }
}

absl::StatusOr<Point> RunOnePoint(const SweepPlan &o, Launcher &launcher,
                                  std::vector<std::string> fault) {
  BaselineExtra extra;
  absl::StatusOr<Baseline> baseline = RunBaseline(o, launcher, &extra);
  if (!baseline.ok()) return baseline.status();
  return RunPoint(o, launcher, extra, 1, "replay", std::move(fault), std::nullopt);
}

std::vector<std::string> CallsiteFault(const std::string &site) {
  return {absl::StrCat("fault.callsite:", site), "fault.times:1"};
}

absl::string_view SweepModeName(SweepMode mode) {
  switch (mode) {
    case SweepMode::kNth: return "nth";
    case SweepMode::kCallsite: return "callsite";
    case SweepMode::kStack: return "stack";
  }
  return "?";
}

}  // namespace allocscope::cmd
