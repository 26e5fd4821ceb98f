// sweep_report.cc: see sweep_report.h; the pieces the table, JSON and HTML writers share.
#include "sweep_report.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace allocscope::cmd {

std::string SignalName(int signal) {
  const char *abbrev = sigabbrev_np(signal);
  return abbrev != nullptr ? absl::StrCat("SIG", abbrev) : absl::StrCat("signal ", signal);
}

double RoundSeconds(absl::Duration duration, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(absl::ToDoubleSeconds(duration) * scale) / scale;
}

std::string OutcomeText(const Point &point) {
  if (point.outcome == Outcome::kHandled && point.run.exit.exit_status)
    return absl::StrCat("handled (exit ", *point.run.exit.exit_status, ")");
  // A crash below the top process: its signal and program (outcome.h's findings).
  const std::optional<ProcessFate> &crashed = point.findings.process;
  if (point.outcome == Outcome::kCrash && crashed && crashed->signal && crashed->depth > 0)
    return absl::StrCat("crash (", SignalName(static_cast<int>(*crashed->signal)), " in ",
                        crashed->exe, ")");
  if (point.outcome == Outcome::kCrash && point.run.exit.signal)
    return absl::StrCat("crash (", SignalName(*point.run.exit.signal), ")");
  return std::string(OutcomeName(point.outcome));
}

std::string SummaryText(const Summary &summary) {
  std::vector<std::string> counts;
  for (const Outcome o : kOutcomes)
    counts.push_back(absl::StrCat(summary.counts[static_cast<int>(o)], " ", OutcomeName(o)));
  const std::string rate =
      summary.runs_per_second ? absl::StrFormat("%.15g runs/s", *summary.runs_per_second) : "-";
  return absl::StrFormat("%d points: %s; %.15g s, %s", summary.points, absl::StrJoin(counts, ", "),
                         summary.sweep_seconds, rate);
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
