// paths.h: file-name helpers the command's pieces share.
#pragma once

#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace allocscope::cmd {

// The canonical absolute path (symbolic links resolved); `path` itself if it cannot be
// resolved (it does not exist).
std::string RealPath(const std::string &path);

// What precedes the last '/': "." for a bare name, "/" for a file in the root.
std::string Dirname(absl::string_view path);

// What follows the last '/'.
std::string Basename(absl::string_view path);

// An existing regular file (symbolic links followed).
bool IsRegularFile(const std::string &path);

// A whole file's bytes; nullopt if it cannot be opened.
std::optional<std::string> ReadWholeFile(const std::string &path);

}  // namespace allocscope::cmd
