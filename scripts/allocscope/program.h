// program.h: the program a command line names, found as a shell finds it, and what its
// file says about whether the preload can act in it.
#pragma once

#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace allocscope::cmd {

// The file that `name` (CMD's argv[0]) runs: `name` itself when it holds a '/', else the
// first executable regular file of that name in a PATH directory (an empty entry is the
// current directory). Errors, each with the shell's message: NotFound ("command not
// found", "No such file or directory") and PermissionDenied ("Permission denied", "Is a
// directory"). ExitStatusFor turns them into 127 and 126.
absl::StatusOr<std::string> FindProgram(absl::string_view name);

// 127 for NotFound, 126 for anything else (the shell's statuses for a program that
// cannot be found or cannot be executed).
int ExitStatusFor(const absl::Status &status);

// Warnings, one line each, when the preload cannot act in the program at `path`: a
// setuid/setgid file (the loader runs it in secure-execution mode and ignores LD_PRELOAD
// paths with a slash) or a statically linked one (no dynamic loader at all).
std::vector<std::string> PreloadWarnings(const std::string &path);

}  // namespace allocscope::cmd
