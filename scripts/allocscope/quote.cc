// quote.cc: see quote.h. Python's shlex.quote, except that '=' is quoted too: an unquoted
// NAME=VALUE as the first word of a line is an assignment, not a command.
#include "quote.h"

#include "absl/strings/ascii.h"

namespace allocscope::cmd {

std::string ShellQuote(absl::string_view arg) {
  if (arg.empty()) return "''";
  bool plain = true;
  for (const char c : arg) {
    // Characters that are literal in every position of a word in every POSIX shell.
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        absl::string_view("@%+:,./-_").find(c) == absl::string_view::npos) {
      plain = false;
      break;
    }
  }
  if (plain) return std::string(arg);
  std::string out = "'";
  for (const char c : arg) {
    if (c == '\'')
      out.append("'\"'\"'");
    else
      out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

std::string ShellJoin(const std::vector<std::string> &args) {
  std::string out;
  for (const std::string &arg : args) {
    if (!out.empty()) out.push_back(' ');
    out.append(ShellQuote(arg));
  }
  return out;
}

}  // namespace allocscope::cmd
