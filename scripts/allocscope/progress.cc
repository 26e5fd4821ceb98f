// progress.cc: see progress.h.
#include "progress.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace allocscope::cmd {
namespace {

constexpr int kBarWidth = 30;

}  // namespace

Progress::Progress(FILE *stream, std::optional<int64_t> total)
    : stream_(stream),
      tty_(isatty(fileno(stream)) == 1),
      total_(total),
      last_(absl::Now()),
      start_(last_) {}

std::string Progress::EtaText() const {
  if (!total_ || done_ <= 0 || done_ >= *total_) return "";
  const absl::Duration left = (absl::Now() - start_) / static_cast<double>(done_) *
                              static_cast<double>(*total_ - done_);
  if (left < absl::Seconds(1)) return "  ETA <1s";
  return absl::StrCat("  ETA ", absl::FormatDuration(absl::Trunc(left, absl::Seconds(1))));
}

std::string Progress::CountsText() const {
  std::vector<std::string> parts;
  for (const Outcome o : kOutcomes)
    if (counts_[static_cast<int>(o)] != 0)
      parts.push_back(absl::StrCat(OutcomeName(o), " ", counts_[static_cast<int>(o)]));
  return absl::StrJoin(parts, "  ");
}

std::string Progress::TotalText() const { return total_ ? absl::StrCat("/", *total_) : ""; }

void Progress::Update(Outcome outcome) {
  ++done_;
  ++counts_[static_cast<int>(outcome)];
  const absl::Time now = absl::Now();
  if (tty_) {
    if (now - last_ >= absl::Milliseconds(100)) {
      Draw();
      last_ = now;
    }
    return;
  }
  const int64_t tenth = total_ && *total_ > 0 ? done_ * 10 / *total_ : 0;
  if ((tenth > last_tenth_ && now - last_ >= absl::Seconds(2)) ||
      now - last_ >= absl::Seconds(10)) {
    last_tenth_ = tenth;
    last_ = now;
    Line();
  }
}

void Progress::Retract(Outcome outcome) {
  --done_;
  --counts_[static_cast<int>(outcome)];
}

void Progress::Draw() {
  const int filled =
      total_ && *total_ > 0
          ? static_cast<int>(std::min<int64_t>(kBarWidth, done_ * kBarWidth / *total_))
          : 0;
  const std::string bar = std::string(static_cast<size_t>(filled), '#') +
                          std::string(static_cast<size_t>(kBarWidth - filled), '.');
  fputs(absl::StrCat("\r\033[K[", bar, "] ", done_, TotalText(), "  ", CountsText(), EtaText())
            .c_str(),
        stream_);
  fflush(stream_);
}

void Progress::Line() {
  printed_ = done_;
  fputs(absl::StrCat("allocscope sweep: ", done_, TotalText(), " points  ", CountsText(),
                     EtaText(), "\n")
            .c_str(),
        stream_);
  fflush(stream_);
}

void Progress::Note(absl::string_view text) {
  if (tty_) fputs("\r\033[K", stream_);
  fputs(absl::StrCat("allocscope sweep: ", text, "\n").c_str(), stream_);
  fflush(stream_);
}

void Progress::Finish() {
  if (tty_) {
    Draw();
    fputs("\n", stream_);
  } else if (done_ != printed_) {
    Line();
  }
  fflush(stream_);
}

}  // namespace allocscope::cmd
