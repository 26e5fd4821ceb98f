// launcher.cc: see launcher.h.
#include "launcher.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "json.h"
#include "workdir.h"
#include "record_format.h"

namespace allocscope::cmd {

Launcher::Launcher(std::string program, std::vector<std::string> command, Environment env,
                   std::string stdin_path, absl::Duration timeout, std::string root)
    : program_(std::move(program)),
      command_(std::move(command)),
      env_(std::move(env)),
      stdin_path_(std::move(stdin_path)),
      timeout_(timeout),
      root_(std::move(root)) {}

absl::StatusOr<std::string> Launcher::NewDir(absl::string_view name) const {
  std::string path = absl::StrCat(root_, "/", name);
  if (mkdir(path.c_str(), 0755) != 0)
    return absl::UnavailableError(absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  return path;
}

Environment Launcher::RunEnvironment(const std::vector<std::string> &pairs) const {
  Environment env = env_;
  std::vector<std::string> conf;
  if (std::optional<std::string> base = env.Get("ALLOCSCOPE_CONF"); base && !base->empty())
    conf.push_back(*base);
  conf.insert(conf.end(), pairs.begin(), pairs.end());
  env.Set("ALLOCSCOPE_CONF", absl::StrJoin(conf, ","));
  return env;
}

absl::StatusOr<RunRecord> Launcher::Run(const std::string &dir,
                                        const std::vector<std::string> &pairs) {
  SpawnRequest request;
  request.program = program_;
  request.argv = command_;
  request.env = RunEnvironment(pairs);
  request.stdin_path = stdin_path_;
  request.stdout_path = absl::StrCat(dir, "/stdout");
  request.stderr_path = absl::StrCat(dir, "/stderr");
  request.timeout = timeout_;
  if (!workdir_source_.empty()) {
    request.cwd = absl::StrCat(dir, "/cwd");
    if (absl::Status s = CopyTree(workdir_source_, request.cwd, workdir_exclude_); !s.ok())
      return s;
  }
  request.stacks_signal = record_format::stacks_signal();
  absl::StatusOr<RunExit> exit = runner_.Run(request);
  if (!exit.ok()) return exit.status();
  runs_.fetch_add(1);
  return RunRecord{*exit, ReadTail(request.stdout_path, kOutputTail),
                   ReadTail(request.stderr_path, kOutputTail)};
}

std::string ReadTail(const std::string &path, size_t limit) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  struct stat st;
  std::string tail;
  if (fstat(fd, &st) == 0) {
    const size_t size = static_cast<size_t>(st.st_size);
    const size_t start = size > limit ? size - limit : 0;
    tail.resize(size - start);
    const ssize_t n = pread(fd, tail.data(), tail.size(), static_cast<off_t>(start));
    tail.resize(n > 0 ? static_cast<size_t>(n) : 0);
    if (start > 0)
      tail = absl::StrCat("[...]", ValidUtf8(tail));
    else
      tail = ValidUtf8(tail);
  }
  close(fd);
  return tail;
}

}  // namespace allocscope::cmd
