// quote.h: shell quoting, for every command line the command prints for a person to paste
// into a POSIX shell (sh, bash, zsh): each argument comes back as itself.
#pragma once

#include <string>
#include <vector>
#include "absl/strings/string_view.h"

namespace allocscope::cmd {

// `arg` as one shell word: unchanged when it holds only characters no shell treats
// specially ('=' counts: NAME=VALUE first on a line is an assignment), else in single
// quotes, a quote inside becoming '"'"'. "" becomes ''.
std::string ShellQuote(absl::string_view arg);

// The arguments quoted and joined by spaces.
std::string ShellJoin(const std::vector<std::string> &args);

}  // namespace allocscope::cmd
