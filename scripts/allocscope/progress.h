// progress.h: the sweep's progress on stderr: points done out of (an estimate of) the
// total, with counts per outcome. On a terminal a bar redrawn at most every 0.1 s;
// otherwise (a log, CI) a line at every tenth of the way, at most every 2 s, and at
// least every 10 s. Not thread-safe: the point runner calls it under its lock.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"

#include "absl/time/time.h"
#include "sweep_report.h"

namespace allocscope::cmd {

class Progress {
 public:
  Progress(FILE *stream, std::optional<int64_t> total);

  void Update(Outcome outcome);
  // Takes back a point counted before (a not-reached point the sweep then dropped).
  void Retract(Outcome outcome);
  // A line of its own, clearing the bar first.
  void Note(absl::string_view text);
  // The final state: the bar completed with a newline, or a last line.
  void Finish();

 private:
  std::string CountsText() const;
  std::string TotalText() const;
  // "  ETA 1m12s" from the rate so far, when the total is known.
  std::string EtaText() const;
  void Draw();
  void Line();

  FILE *stream_;
  bool tty_;
  std::optional<int64_t> total_;
  int64_t counts_[kOutcomeCount] = {};
  int64_t done_ = 0;
  int64_t printed_ = 0;  // done_ when the last line was printed
  int64_t last_tenth_ = 0;
  absl::Time last_;
  absl::Time start_;
};

}  // namespace allocscope::cmd
