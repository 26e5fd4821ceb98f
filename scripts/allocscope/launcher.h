// launcher.h: how a sweep runs CMD: under the preload with the sweep's configuration plus
// a run's own fault.* pairs, in a process group of its own (killed whole on a timeout),
// stdin replayed from one file, stdout and stderr into files in the run's own directory
// under the sweep's working directory.
#pragma once

#include <atomic>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "subprocess.h"
#include "sweep_report.h"

namespace allocscope::cmd {

class Launcher {
 public:
  // `program`: the file CMD's argv[0] names; `env`: the preload environment every run
  // starts from; `root`: the sweep's working directory.
  Launcher(std::string program, std::vector<std::string> command, Environment env,
           std::string stdin_path, absl::Duration timeout, std::string root);

  // Each run starts in a fresh copy of `source` (workdir.h), leaving `exclude` out; never
  // called: runs start in the sweep's own working directory.
  void CopyWorkdirFrom(std::string source, std::string exclude) {
    workdir_source_ = std::move(source);
    workdir_exclude_ = std::move(exclude);
  }

  // A new directory for one run, ROOT/NAME.
  absl::StatusOr<std::string> NewDir(absl::string_view name) const;

  // The environment of a run with these fault.* pairs after the sweep's configuration.
  Environment RunEnvironment(const std::vector<std::string> &pairs) const;

  // Runs CMD once with `pairs`, its output in DIR/stdout and DIR/stderr (and its working
  // directory DIR/cwd, when copied).
  absl::StatusOr<RunRecord> Run(const std::string &dir, const std::vector<std::string> &pairs);

  const std::vector<std::string> &command() const { return command_; }
  const std::string &stdin_path() const { return stdin_path_; }
  absl::Duration timeout() const { return timeout_; }
  GroupRunner &runner() { return runner_; }
  // The runs of CMD so far (not counting gdb's).
  int64_t runs() const { return runs_.load(); }

 private:
  std::string program_;
  std::vector<std::string> command_;
  Environment env_;
  std::string stdin_path_;
  absl::Duration timeout_;
  std::string root_;
  std::string workdir_source_, workdir_exclude_;
  GroupRunner runner_;
  std::atomic<int64_t> runs_{0};
};

// The last `limit` bytes of the file at `path` as UTF-8 (bytes that are not are replaced),
// after "[...]" when the file is longer.
std::string ReadTail(const std::string &path, size_t limit);

}  // namespace allocscope::cmd
