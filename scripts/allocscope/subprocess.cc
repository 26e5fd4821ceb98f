// subprocess.cc: see subprocess.h. Programs start with posix_spawn (a vfork-style clone: cheap in
// a multi-threaded process, and it reports a failed exec as its return value), with an
// empty signal mask: the sweep blocks SIGINT and SIGTERM in its own threads to take them
// in one place, and a mask is inherited across exec.
#include "subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

extern char **environ;

namespace allocscope::cmd {
namespace {

// posix_spawn's attributes and file actions, destroyed when it goes out of scope.
class SpawnSetup {
 public:
  SpawnSetup() {
    posix_spawnattr_init(&attr_);
    posix_spawn_file_actions_init(&actions_);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr_, &none);
  }
  ~SpawnSetup() {
    posix_spawnattr_destroy(&attr_);
    posix_spawn_file_actions_destroy(&actions_);
  }
  SpawnSetup(const SpawnSetup &) = delete;
  SpawnSetup &operator=(const SpawnSetup &) = delete;

  void SetFlags(short extra) { posix_spawnattr_setflags(&attr_, POSIX_SPAWN_SETSIGMASK | extra); }
  void Open(int fd, const std::string &path, int flags) {
    posix_spawn_file_actions_addopen(&actions_, fd, path.c_str(), flags, 0644);
  }
  void Dup(int from, int to) { posix_spawn_file_actions_adddup2(&actions_, from, to); }
  // After the opens (their paths are absolute anyway), before the exec.
  void Chdir(const std::string &dir) { posix_spawn_file_actions_addchdir_np(&actions_, dir.c_str()); }

  // Starts `program` (found on PATH with path_search) with argv; an errno value, 0 on
  // success.
  int Spawn(pid_t *pid, const std::string &program, const std::vector<std::string> &argv,
            bool path_search, char *const *envp) {
    CStringArray args(argv);
    return path_search ? posix_spawnp(pid, program.c_str(), &actions_, &attr_, args.get(), envp)
                       : posix_spawn(pid, program.c_str(), &actions_, &attr_, args.get(), envp);
  }

 private:
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

// Waits until `fd` is readable or `deadline` passes; false on the deadline.
bool PollUntil(int fd, absl::Time deadline) {
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    struct pollfd p = {fd, POLLIN, 0};
    // Rounded up, so that the deadline has passed when poll times out.
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(left + absl::Milliseconds(1)));
    const int n = poll(&p, 1, ms);
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return true;  // let the caller's wait say what happened
  }
}

// glibc 2.36's <sys/pidfd.h> declares pidfd_open without C linkage: the system call itself.
int PidfdOpen(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

pid_t Reap(pid_t pid, int *status) {
  pid_t r;
  do {
    r = waitpid(pid, status, 0);
  } while (r < 0 && errno == EINTR);
  return r;
}

}  // namespace

// ---- Environment --------------------------------------------------------------------

Environment Environment::Current() {
  Environment env;
  for (char **e = environ; *e != nullptr; ++e) {
    const absl::string_view entry(*e);
    const size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) continue;
    env.vars_.emplace_back(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return env;
}

std::optional<std::string> Environment::Get(absl::string_view name) const {
  for (const auto &[n, v] : vars_)
    if (n == name) return v;
  return std::nullopt;
}

void Environment::Set(absl::string_view name, absl::string_view value) {
  for (auto &[n, v] : vars_) {
    if (n == name) {
      v = std::string(value);
      return;
    }
  }
  vars_.emplace_back(std::string(name), std::string(value));
}

void Environment::Erase(absl::string_view name) {
  for (auto it = vars_.begin(); it != vars_.end();) {
    if (it->first == name)
      it = vars_.erase(it);
    else
      ++it;
  }
}

std::vector<std::string> Environment::Entries() const {
  std::vector<std::string> out;
  out.reserve(vars_.size());
  for (const auto &[n, v] : vars_) out.push_back(absl::StrCat(n, "=", v));
  return out;
}

CStringArray::CStringArray(const std::vector<std::string> &strings) : strings_(strings) {
  for (std::string &s : strings_) pointers_.push_back(s.data());
  pointers_.push_back(nullptr);
}

// ---- GroupRunner ----------------------------------------------------------------------

absl::StatusOr<RunExit> GroupRunner::Run(const SpawnRequest &request) {
  if (stopped()) return absl::CancelledError("stopped");
  SpawnSetup setup;
  setup.SetFlags(POSIX_SPAWN_SETSID);
  setup.Open(0, request.stdin_path, O_RDONLY);
  setup.Open(1, request.stdout_path, O_WRONLY | O_CREAT | O_TRUNC);
  if (request.stderr_path.empty())
    setup.Dup(1, 2);
  else
    setup.Open(2, request.stderr_path, O_WRONLY | O_CREAT | O_TRUNC);
  if (!request.cwd.empty()) setup.Chdir(request.cwd);
  CStringArray envp(request.env.Entries());
  const absl::Time start = absl::Now();
  pid_t pid;
  if (const int err = setup.Spawn(&pid, request.program, request.argv, false, envp.get()); err != 0)
    return absl::UnavailableError(
        absl::StrCat("cannot start ", request.program, ": ", strerror(err)));
  {
    absl::MutexLock lock(&mu_);
    live_.insert(pid);
    if (stopping_) killpg(pid, SIGKILL);
  }
  RunExit exit;
  const int pidfd = PidfdOpen(pid);
  const int pidfd_error = pidfd < 0 ? errno : 0;
  if (pidfd >= 0) {
    exit.timed_out = !PollUntil(pidfd, start + request.timeout);
    if (exit.timed_out && request.stacks_signal != 0) {
      killpg(pid, request.stacks_signal);
      PollUntil(pidfd, absl::Now() + absl::Milliseconds(500));
    }
    close(pidfd);
  }
  // After a timeout this ends the run; otherwise it ends what the run left behind.
  killpg(pid, SIGKILL);
  {
    absl::MutexLock lock(&mu_);
    live_.erase(pid);
  }
  int status = 0;
  Reap(pid, &status);
  exit.duration = absl::Now() - start;
  if (pidfd < 0)
    return absl::InternalError(absl::StrCat(
        "cannot watch the run: pidfd_open: ", strerror(pidfd_error), " (Linux 5.3 or later)"));
  if (WIFEXITED(status))
    exit.exit_status = WEXITSTATUS(status);
  else if (WIFSIGNALED(status) && !exit.timed_out)
    exit.signal = WTERMSIG(status);
  return exit;
}

void GroupRunner::Stop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  for (const pid_t pid : live_) killpg(pid, SIGKILL);
}

bool GroupRunner::stopped() {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

// ---- CaptureOutput --------------------------------------------------------------------

absl::StatusOr<std::string> CaptureOutput(const std::vector<std::string> &argv,
                                          absl::Duration timeout) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0)
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  SpawnSetup setup;
  setup.SetFlags(0);
  setup.Open(0, "/dev/null", O_RDONLY);
  setup.Dup(pipe_fds[1], 1);
  setup.Open(2, "/dev/null", O_WRONLY);
  pid_t pid;
  const int err = setup.Spawn(&pid, argv[0], argv, true, environ);
  close(pipe_fds[1]);
  if (err != 0) {
    close(pipe_fds[0]);
    return absl::UnavailableError(absl::StrCat("cannot start ", argv[0], ": ", strerror(err)));
  }
  const absl::Time deadline = absl::Now() + timeout;
  std::string out;
  bool timed_out = false;
  char buf[65536];
  while (true) {
    if (!PollUntil(pipe_fds[0], deadline)) {
      timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    const ssize_t n = read(pipe_fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(pipe_fds[0]);
  int status = 0;
  Reap(pid, &status);
  if (timed_out)
    return absl::DeadlineExceededError(
        absl::StrCat(argv[0], " did not finish in ", absl::FormatDuration(timeout)));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return absl::InternalError(absl::StrCat(argv[0], " failed"));
  return out;
}

}  // namespace allocscope::cmd
