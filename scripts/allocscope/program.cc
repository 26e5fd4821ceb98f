// program.cc: see program.h.
#include "program.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "elf_file.h"
#include "exit_status.h"

namespace allocscope::cmd {
namespace {

// What exec would make of `path`: OK if it can run it.
absl::Status Runnable(const std::string &path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0)
    return absl::NotFoundError(absl::StrCat(path, ": ", strerror(errno)));
  if (S_ISDIR(st.st_mode))
    return absl::PermissionDeniedError(absl::StrCat(path, ": Is a directory"));
  if (!S_ISREG(st.st_mode) || access(path.c_str(), X_OK) != 0)
    return absl::PermissionDeniedError(absl::StrCat(path, ": Permission denied"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> FindProgram(absl::string_view name) {
  if (name.empty()) return absl::NotFoundError("'': command not found");
  if (name.find('/') != absl::string_view::npos) {
    const std::string path(name);
    absl::Status runnable = Runnable(path);
    if (!runnable.ok()) return runnable;
    return path;
  }
  // glibc's execvp searches the same default when PATH is unset.
  const char *path_env = getenv("PATH");
  const absl::string_view search = path_env != nullptr ? path_env : "/bin:/usr/bin";
  absl::Status first_refusal = absl::OkStatus();
  for (absl::string_view dir : absl::StrSplit(search, ':')) {
    const std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", name);
    absl::Status runnable = Runnable(candidate);
    if (runnable.ok()) return candidate;
    if (!absl::IsNotFound(runnable) && first_refusal.ok()) first_refusal = runnable;
  }
  // As execvp: a file that exists but cannot run beats not finding one at all.
  if (!first_refusal.ok()) return first_refusal;
  return absl::NotFoundError(absl::StrCat(name, ": command not found"));
}

int ExitStatusFor(const absl::Status &status) {
  return absl::IsNotFound(status) ? kExitNotFound : kExitCannotExecute;
}

std::vector<std::string> PreloadWarnings(const std::string &path) {
  std::vector<std::string> warnings;
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID)))
    warnings.push_back(absl::StrCat(path,
                                    " is setuid/setgid: the loader runs it in secure-execution "
                                    "mode and ignores LD_PRELOAD"));
  absl::StatusOr<ElfFile> elf = ElfFile::Open(path);
  if (elf.ok() && !elf->has_interpreter())
    warnings.push_back(absl::StrCat(path, " is statically linked: LD_PRELOAD has no effect on it"));
  return warnings;
}

}  // namespace allocscope::cmd
