// subprocess.h: starting programs. A GroupRunner starts each run in a session (and process
// group) of its own, waits for it with a timeout, and kills its whole group, so that
// nothing a run started outlives it; Stop() kills every run at once (the sweep's SIGINT).
// CaptureOutput runs a helper (addr2line) and returns what it printed.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace allocscope::cmd {

// The environment of a program to start: NAME=VALUE entries in order.
class Environment {
 public:
  // This process's environment.
  static Environment Current();

  std::optional<std::string> Get(absl::string_view name) const;
  void Set(absl::string_view name, absl::string_view value);
  void Erase(absl::string_view name);
  // NAME=VALUE strings, for exec.
  std::vector<std::string> Entries() const;

 private:
  std::vector<std::pair<std::string, std::string>> vars_;
};

// Strings as the NULL-terminated array of C strings exec takes; valid while it lives.
class CStringArray {
 public:
  explicit CStringArray(const std::vector<std::string> &strings);
  char *const *get() { return pointers_.data(); }

 private:
  std::vector<std::string> strings_;
  std::vector<char *> pointers_;
};

struct SpawnRequest {
  std::string program;            // the file to execute: no PATH search
  std::vector<std::string> argv;  // argv[0] as the program should see it
  Environment env;
  std::string stdin_path;   // read
  std::string stdout_path;  // created or truncated
  std::string stderr_path;  // likewise; "" = the same file as stdout
  std::string cwd;          // the working directory to start in; "" = this process's
  absl::Duration timeout;
  // Sent to the run's process group when it times out, then a moment's wait, before the
  // group is killed: the preload writes each thread's stack (policy/fault_events.h). 0: none.
  int stacks_signal = 0;
};

// How a run ended.
struct RunExit {
  std::optional<int> exit_status;  // it exited with this status
  std::optional<int> signal;       // a signal ended it (not our kill after a timeout)
  bool timed_out = false;          // it ran past the timeout and its group was killed
  absl::Duration duration;
};

class GroupRunner {
 public:
  // Runs the request to its end. The leader is watched through a pidfd: it becomes
  // readable when the leader exits, before anyone reaps it, so the zombie still holds the
  // process-group id when the group is killed (no other group can have taken that id).
  // Then any member left (a daemonised grandchild) is killed and the leader reaped.
  // Cancelled after Stop(), without starting anything.
  absl::StatusOr<RunExit> Run(const SpawnRequest &request);

  // Kills the groups of every run in progress and refuses new ones. Safe from any thread.
  void Stop();
  bool stopped();

 private:
  absl::Mutex mu_;
  absl::flat_hash_set<pid_t> live_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

// Runs argv (argv[0] found on PATH) with stdin and stderr on /dev/null and returns its
// standard output; an error if it cannot start, runs past `timeout` (it is killed), or
// ends with a status other than 0.
absl::StatusOr<std::string> CaptureOutput(const std::vector<std::string> &argv,
                                          absl::Duration timeout);

}  // namespace allocscope::cmd
