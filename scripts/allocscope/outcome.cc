// outcome.cc: see outcome.h.
#include "outcome.h"

#include <signal.h>

#include <algorithm>
#include <map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace allocscope::cmd {
namespace {

// Every process the records name, by pid, with its depth below the top process.
std::vector<ProcessFate> Fates(const std::vector<EventRecord> &events) {
  std::map<int64_t, ProcessFate> by_pid;
  for (const EventRecord &e : events) {
    ProcessFate &f = by_pid[e.pid];
    f.pid = e.pid;
    if (f.end.empty()) f.end = "unknown";
    if (e.kind == "start") {
      f.ppid = e.ppid;
      f.exe = e.exe;  // the last start wins: a fork child that then execs
    } else if (e.kind == "exit" || e.kind == "crash") {
      f.ppid = e.ppid;
      f.exe = e.exe;
      f.end = e.kind == "crash" ? "crash" : e.how;
      if (e.kind == "crash") f.signal = e.signal;
      else f.status = e.status;
      f.injected = e.injected;
      f.failed_path_bytes = e.failed_path_bytes;
    }
  }
  std::vector<ProcessFate> out;
  for (auto &[pid, f] : by_pid) {
    int depth = 0;
    for (int64_t p = f.ppid; by_pid.count(p) != 0 && depth < 64; p = by_pid[p].ppid) ++depth;
    f.depth = depth;
    out.push_back(f);
  }
  return out;
}

const ProcessFate *FateOf(const std::vector<ProcessFate> &fates, int64_t pid) {
  for (const ProcessFate &f : fates)
    if (f.pid == pid) return &f;
  return nullptr;
}

std::string Who(const std::vector<ProcessFate> &fates, int64_t pid) {
  const ProcessFate *f = FateOf(fates, pid);
  if (f == nullptr) return absl::StrCat("pid ", pid);
  static const char *kDepth[] = {"the top process", "a child", "a grandchild"};
  const std::string depth =
      f->depth < 3 ? kDepth[f->depth] : absl::StrCat(f->depth, " levels below the top process");
  return absl::StrCat("pid ", pid, " (", f->exe, ", ", depth, ")");
}

// The first injection of each process.
absl::flat_hash_map<int64_t, const Injection *> FirstInjections(const RunEvidence &run) {
  absl::flat_hash_map<int64_t, const Injection *> first;
  for (const Injection &in : run.injections) first.try_emplace(in.pid, &in);
  return first;
}

}  // namespace

absl::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kClean: return "clean";
    case Outcome::kHandled: return "handled";
    case Outcome::kOomExit: return "oom-exit";
    case Outcome::kWrongOutput: return "wrong-output";
    case Outcome::kLeak: return "leak";
    case Outcome::kCrash: return "crash";
    case Outcome::kHang: return "hang";
    case Outcome::kNotReached: return "not-reached";
  }
  return "?";
}

bool EndsInCallerChain(const std::vector<std::string> &ending,
                       const std::vector<std::string> &injection) {
  for (size_t k = 1; k <= 2 && k + 2 < injection.size(); ++k) {
    for (size_t j = 0; j < ending.size(); ++j) {
      if (ending[j] != injection[k]) continue;
      bool same = true;
      for (size_t m = 1; j + m < ending.size() && k + m < injection.size(); ++m)
        if (ending[j + m] != injection[k + m]) {
          same = false;
          break;
        }
      if (same) return true;
    }
  }
  return false;
}

Outcome Classify(const RunEvidence &run, const RunEvidence &baseline, bool ignore_output,
                 Findings *f) {
  f->processes = Fates(run.events);
  f->stdout_differs = run.stdout_text != baseline.stdout_text;
  f->stderr_differs = run.stderr_text != baseline.stderr_text;
  if (!run.injections.empty() && run.injections.front().stack) f->stack = run.injections.front().stack;
  if (run.exit.timed_out) {
    for (const EventRecord &e : run.events)
      if (e.kind == "thread") f->threads.push_back({e.pid, e.tid, e.exe, e.frames, {}});
    f->reason = absl::StrCat("still running after the timeout; ", f->threads.size(),
                             " thread stacks taken before its process group was killed");
    return Outcome::kHang;
  }
  if (run.injections.empty()) {
    f->reason = "no failure was injected";
    return Outcome::kNotReached;
  }
  const auto first = FirstInjections(run);
  const bool assert_failed = absl::StrContains(run.stderr_text, "Assertion `");
  // Crashes, and aborts that end the caller chain (oom-exit candidates).
  const EventRecord *oom = nullptr;
  for (const EventRecord &e : run.events) {
    if (e.kind != "crash") continue;
    const auto in = first.find(e.pid);
    if (e.signal == SIGABRT && in != first.end() && !assert_failed &&
        EndsInCallerChain(e.frames, in->second->backtrace)) {
      if (oom == nullptr) oom = &e;
      continue;
    }
    f->process = FateOf(f->processes, e.pid) ? *FateOf(f->processes, e.pid) : ProcessFate{};
    f->crash_stack = e.frames;
    f->reason = absl::StrCat(SignalName(static_cast<int>(e.signal.value_or(0))), " in ", Who(f->processes, e.pid),
                             e.injected == 0 ? ", which had no injected failure itself" : "");
    return Outcome::kCrash;
  }
  if (run.exit.signal && !(oom != nullptr && *run.exit.signal == SIGABRT)) {
    f->reason = absl::StrCat(SignalName(*run.exit.signal),
                             " ended the top process (no crash record: killed from outside, "
                             "or the program replaced allocscope's handler)");
    return Outcome::kCrash;
  }
  const auto oom_exit = [&](const EventRecord &e, absl::string_view how) {
    if (const ProcessFate *p = FateOf(f->processes, e.pid)) f->process = *p;
    f->crash_stack = e.frames;
    f->reason = absl::StrCat(how, " in ", Who(f->processes, e.pid),
                             " with the failing call's caller still on the stack");
    return Outcome::kOomExit;
  };
  if (oom != nullptr) return oom_exit(*oom, "abort()");
  for (const EventRecord &e : run.events) {
    if (e.kind != "exit" || e.status.value_or(0) == 0) continue;
    const auto in = first.find(e.pid);
    if (in != first.end() && EndsInCallerChain(e.frames, in->second->backtrace))
      return oom_exit(e, absl::StrCat(e.how, "(", *e.status, ")"));
  }
  const bool same_status = run.exit.exit_status == baseline.exit.exit_status;
  if (!ignore_output && same_status && f->stdout_differs) {
    f->reason = "the baseline's exit status, but stdout differs";
    return Outcome::kWrongOutput;
  }
  // Leaks: each process's failed-path bytes against what the baseline's process of the
  // same program held at exit of everything it allocated.
  for (const EventRecord &e : run.events) {
    if (e.kind != "exit" || !e.failed_path_bytes || *e.failed_path_bytes == 0) continue;
    std::optional<int64_t> held;
    for (const EventRecord &b : baseline.events)
      if (b.kind == "exit" && b.exe == e.exe && b.failed_path_bytes)
        held = std::max(held.value_or(0), *b.failed_path_bytes);
    if (!held || *e.failed_path_bytes <= *held) continue;
    if (const ProcessFate *p = FateOf(f->processes, e.pid)) f->process = *p;
    f->failed_path_bytes = e.failed_path_bytes;
    f->baseline_live_bytes = held;
    f->leak_bytes = *e.failed_path_bytes - *held;
    f->reason = absl::StrCat(Who(f->processes, e.pid), " ended holding ", *e.failed_path_bytes,
                             " bytes in ", e.failed_path_blocks.value_or(0),
                             " blocks allocated after the failure; the baseline held ", *held,
                             " of all it allocated");
    return Outcome::kLeak;
  }
  if (!same_status) {
    f->reason = "another exit status than the baseline's";
    return Outcome::kHandled;
  }
  if (!ignore_output && f->stderr_differs) {
    f->reason = "the baseline's exit status and stdout, but stderr differs";
    return Outcome::kHandled;
  }
  f->reason = "the baseline's exit status and output";
  return Outcome::kClean;
}

namespace {

Json FateJson(const ProcessFate &p) {
  return Json::Object{{"pid", p.pid},
                      {"ppid", p.ppid},
                      {"exe", p.exe},
                      {"depth", p.depth},
                      {"end", p.end},
                      {"status", Json::Optional(p.status)},
                      {"signal", Json::Optional(p.signal)},
                      {"signal_name", p.signal ? Json(SignalName(static_cast<int>(*p.signal))) : Json()},
                      {"injected", p.injected},
                      {"failed_path_bytes", Json::Optional(p.failed_path_bytes)}};
}

// Frames with their symbols where known: {frame, module, offset, function, source}.
Json FramesJson(const std::vector<std::string> &frames, const std::vector<Symbol> &symbols) {
  Json out{Json::Array{}};
  for (size_t i = 0; i < frames.size(); ++i) {
    const std::string &frame = frames[i];
    const size_t plus = frame.rfind("+0x");
    Json item{Json::Object{}};
    item.set("frame", frame);
    item.set("module", plus == std::string::npos ? Json() : Json(frame.substr(0, plus)));
    item.set("offset", plus == std::string::npos ? Json() : Json(frame.substr(plus + 1)));
    const Symbol *s = i < symbols.size() ? &symbols[i] : nullptr;
    item.set("function", s != nullptr ? Json::Optional(s->function) : Json());
    item.set("source", s != nullptr ? Json::Optional(s->source) : Json());
    out.push(std::move(item));
  }
  return out;
}

}  // namespace

void AddFindingsJson(Json *point, const Findings &f) {
  point->set("reason", f.reason);
  point->set("stack_hash", Json::Optional(f.stack));
  point->set("process", f.process ? FateJson(*f.process) : Json());
  if (!f.crash_stack.empty()) point->set("crash_stack", FramesJson(f.crash_stack, f.crash_symbols));
  point->set("leak_bytes", Json::Optional(f.leak_bytes));
  point->set("failed_path_bytes", Json::Optional(f.failed_path_bytes));
  point->set("baseline_live_bytes", Json::Optional(f.baseline_live_bytes));
  point->set("stdout_differs", f.stdout_differs);
  point->set("stderr_differs", f.stderr_differs);
  Json processes{Json::Array{}};
  for (const ProcessFate &p : f.processes) processes.push(FateJson(p));
  point->set("processes", std::move(processes));
  if (!f.threads.empty()) {
    Json threads{Json::Array{}};
    for (const ThreadStack &t : f.threads)
      threads.push(Json::Object{{"pid", t.pid},
                                {"tid", t.tid},
                                {"exe", t.exe},
                                {"frames", FramesJson(t.frames, t.symbols)}});
    point->set("threads", std::move(threads));
  }
}

}  // namespace allocscope::cmd
