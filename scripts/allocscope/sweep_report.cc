// sweep_report.cc: see sweep_report.h; the pieces the table, JSON and HTML writers share.
#include "sweep_report.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cmath>
#include <iterator>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "quote.h"

namespace allocscope::cmd {

std::string JsonText(const Json &object, absl::string_view key) {
  const Json *v = object.find(key);
  return v != nullptr && v->is_string() ? v->as_string() : "";
}

namespace {


// Failing outcomes first, worst first; then the rest.
int OutcomeRank(absl::string_view outcome) {
  constexpr absl::string_view kOrder[] = {"crash", "hang",    "leak",     "wrong-output",
                                          "oom-exit", "handled", "clean", "not-reached"};
  for (size_t i = 0; i < std::size(kOrder); ++i)
    if (kOrder[i] == outcome) return static_cast<int>(i);
  return static_cast<int>(std::size(kOrder));
}

// How many frames of a crash stack tell two crashes apart: deeper frames are the same
// program's main loop for every crash.
constexpr size_t kGroupFrames = 5;

// The place a point's group is keyed on (see GroupPoints).
std::string GroupKey(const Json &p) {
  const std::string outcome = JsonText(p, "outcome");
  if (outcome == "crash") {
    std::vector<std::string> frames;
    const Json *stack = p.find("crash_stack");
    if (stack != nullptr && stack->is_array()) {
      for (const Json &f : stack->as_array()) {
        if (frames.size() == kGroupFrames) break;
        // module+offset when the preload gave it; else what gdb named.
        const std::string offset = JsonText(f, "offset");
        frames.push_back(!offset.empty() ? absl::StrCat(JsonText(f, "module"), "+", offset)
                                         : absl::StrCat(JsonText(f, "function"), "@", JsonText(f, "file")));
      }
    }
    if (!frames.empty()) return absl::StrJoin(frames, " < ");
  }
  const std::string callsite = JsonText(p, "callsite");
  return callsite.empty() ? "-" : callsite;
}

}  // namespace

std::string PointId(absl::string_view mode, const std::vector<std::string> &fault) {
  if (mode == "nth" && fault.size() == 1 && absl::StartsWith(fault[0], "fault.nth:"))
    return absl::StrCat("nth-", fault[0].substr(10));
  // FNV-1a over the pairs, each ended by a NUL: the same pairs give the same id in every
  // sweep of the program, whatever order the points ran in.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const std::string &pair : fault) {
    for (const char c : pair) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    h = (h ^ 0) * 0x100000001b3ULL;
  }
  return absl::StrFormat("%s-%016x", mode, h);
}

std::string ReplayCommand(const Report &report, const std::vector<std::string> &fault) {
  std::vector<std::string> pairs;
  if (!report.conf.empty()) pairs.push_back(report.conf);
  pairs.insert(pairs.end(), fault.begin(), fault.end());
  std::vector<std::string> argv = {report.allocscope.empty() ? "allocscope" : report.allocscope,
                                   "run", "--conf", absl::StrJoin(pairs, ",")};
  argv.push_back("--");
  argv.insert(argv.end(), report.command.begin(), report.command.end());
  // stdin from the same file as in the sweep (a file, never a terminal or a pipe, so the
  // program's allocations, and so nth counts, are the same).
  // In the directory the sweep started in: the runs worked in copies of it, so it is as
  // the first run found it. (--workdir-template's runs copied another directory, which
  // a replay line must not write into: `sweep --replay` copies it.)
  const std::string cd = report.cwd.empty() || report.isolation.kind == "template"
                             ? ""
                             : absl::StrCat("cd ", ShellQuote(report.cwd), " && ");
  return absl::StrCat(cd, ShellJoin(argv), " < ",
                      ShellQuote(report.stdin_file.value_or("/dev/null")));
}

bool IsFailingOutcome(absl::string_view outcome) {
  return outcome == "crash" || outcome == "hang" || outcome == "leak" ||
         outcome == "wrong-output";
}

std::vector<PointGroup> GroupPoints(const Json &report) {
  std::vector<PointGroup> groups;
  const Json *points = report.find("points");
  if (points == nullptr || !points->is_array()) return groups;
  absl::flat_hash_map<std::pair<std::string, std::string>, size_t> index;
  for (const Json &p : points->as_array()) {
    std::string outcome = JsonText(p, "outcome");
    std::string key = GroupKey(p);
    auto [it, added] = index.try_emplace(std::make_pair(outcome, key), groups.size());
    if (added) groups.push_back({std::move(outcome), std::move(key), {}});
    groups[it->second].points.push_back(&p);
  }
  std::stable_sort(groups.begin(), groups.end(), [](const PointGroup &a, const PointGroup &b) {
    const int ra = OutcomeRank(a.outcome), rb = OutcomeRank(b.outcome);
    if (ra != rb) return ra < rb;
    return a.points.size() > b.points.size();
  });
  return groups;
}

std::optional<SourceLine> PointSourceLine(const Json &point) {
  if (const Json *caller = point.find("caller"); caller != nullptr && caller->is_object()) {
    const Json *line = caller->find("line");
    if (!JsonText(*caller, "file").empty() && line != nullptr && line->is_int())
      return SourceLine{JsonText(*caller, "file"), line->as_int()};
  }
  const std::string source = JsonText(point, "source");
  const size_t colon = source.rfind(':');
  int64_t line;
  if (colon == std::string::npos || !absl::SimpleAtoi(source.substr(colon + 1), &line) ||
      line <= 0)
    return std::nullopt;
  return SourceLine{source.substr(0, colon), line};
}

std::string SignalName(int signal) {
  const char *abbrev = sigabbrev_np(signal);
  return abbrev != nullptr ? absl::StrCat("SIG", abbrev) : absl::StrCat("signal ", signal);
}

double RoundSeconds(absl::Duration duration, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(absl::ToDoubleSeconds(duration) * scale) / scale;
}

absl::Status WriteTextFile(const std::string &path, absl::string_view text) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", strerror(errno)));
  while (!text.empty()) {
    const ssize_t n = write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      close(fd);
      return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", strerror(err)));
    }
    text.remove_prefix(static_cast<size_t>(n));
  }
  if (close(fd) != 0)
    return absl::UnavailableError(absl::StrCat("cannot write ", path, ": ", strerror(errno)));
  return absl::OkStatus();
}

}  // namespace allocscope::cmd
