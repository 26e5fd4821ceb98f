// report_table.cc: the sweep's table on stdout: one row per group of points (a thousand
// nth points at a dozen call sites are a dozen rows).
#include <algorithm>
#include <array>

#include "absl/strings/str_cat.h"
#include "sweep_report.h"

namespace allocscope::cmd {
namespace {

constexpr size_t kFunctionWidth = 40;

// Columns are as wide as their widest cell in characters, not bytes (a C++ name may hold
// UTF-8).
size_t DisplayWidth(absl::string_view s) {
  size_t n = 0;
  for (const char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

// The first `width` - 1 characters and an ellipsis, when `s` is wider than `width`.
std::string Shorten(const std::string &s, size_t width) {
  if (DisplayWidth(s) <= width) return s;
  size_t chars = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;
    if (chars == width - 1) break;
    ++chars;
  }
  return absl::StrCat(s.substr(0, i), "\u2026");
}

std::string ShortSource(const std::optional<std::string> &source) {
  if (!source) return "-";
  const size_t slash = source->rfind('/');
  return slash == std::string::npos ? *source : source->substr(slash + 1);
}


// Rows of cells, each column as wide as its widest cell, the last one unpadded.
template <size_t N>
std::string Align(const std::vector<std::array<std::string, N>> &rows) {
  size_t widths[N] = {};
  for (const auto &row : rows)
    for (size_t i = 0; i + 1 < N; ++i) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  std::string out;
  for (const auto &row : rows) {
    for (size_t i = 0; i + 1 < N; ++i)
      absl::StrAppend(&out, row[i], std::string(widths[i] - DisplayWidth(row[i]) + 2, ' '));
    absl::StrAppend(&out, row[N - 1], "\n");
  }
  return out;
}

}  // namespace

std::string GroupTable(const Json &report) {
  std::vector<std::array<std::string, 6>> rows = {
      {"outcome", "points", "first point", "call site", "function", "source"}};
  for (const PointGroup &g : GroupPoints(report)) {
    const Json &p = g.first();
    std::string outcome = g.outcome;
    const std::string signal = JsonText(p, "signal_name");
    if (g.outcome == "crash" && !signal.empty()) absl::StrAppend(&outcome, " (", signal, ")");
    const std::string function = JsonText(p, "function");
    // The caller's line (a strdup's is the program's, not libc's), else the call site's.
    std::string source = JsonText(p, "source");
    if (const std::optional<SourceLine> line = PointSourceLine(p))
      source = absl::StrCat(line->file, ":", line->line);
    rows.push_back({outcome, absl::StrCat(g.points.size()), JsonText(p, "id"),
                    JsonText(p, "callsite").empty() ? "-" : JsonText(p, "callsite"),
                    Shorten(function.empty() ? "?" : function, kFunctionWidth),
                    ShortSource(source.empty() ? std::nullopt : std::optional<std::string>(source))});
  }
  return Align(rows);
}

}  // namespace allocscope::cmd
