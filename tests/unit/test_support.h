// test_support.h: helpers every unit test may use, with or without the preload: files,
// clocks, child processes, the process's memory as the kernel counts it. Nothing here
// knows allocscope (preload_support.h holds what reads the preload through its C API,
// engine_support.h what reaches into the engine linked directly).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>

#include <gtest/gtest.h>

namespace test_support {

// The whole content of a file ("" if it cannot be read).
inline std::string read_file(const std::string &path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// How many times `what` occurs in `text`.
inline int count_of(const std::string &text, const std::string &what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// An empty file in /tmp for the lifetime of the object (reports, logs), removed after.
class TempFile {
 public:
  TempFile() {
    char tmpl[] = "/tmp/allocscope-test-XXXXXX";
    const int fd = mkstemp(tmpl);
    EXPECT_GE(fd, 0) << "mkstemp";
    if (fd >= 0) close(fd);
    path_ = tmpl;
  }
  ~TempFile() { unlink(path_.c_str()); }
  TempFile(const TempFile &) = delete;
  TempFile &operator=(const TempFile &) = delete;

  const std::string &path() const { return path_; }
  std::string text() const { return read_file(path_); }

 private:
  std::string path_;
};

using Clock = std::chrono::steady_clock;

inline int64_t ms_since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

inline void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// in_child's result for a child killed by signal `sig`: kKilledBy + sig, above any exit
// status. A child past its deadline ends as kKilledBy + SIGALRM.
inline constexpr int kKilledBy = 1000;

// Runs fn in a forked child (without a core file, should it crash; killed by SIGALRM after
// deadline_s seconds, if given) and returns how the child ended: fn's return value as its
// exit status (0 for a fn that returns nothing), or kKilledBy + the signal that killed it.
// A child reports a failed check through its exit status (CHILD_CHECK): gtest's
// assertions in a child are lost with it.
template <typename Fn>
int in_child(Fn fn, unsigned deadline_s = 0) {
  fflush(nullptr);  // the child must not write the parent's buffered output again
  const pid_t pid = fork();
  if (pid == 0) {
    const rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    if (deadline_s != 0) alarm(deadline_s);
    if constexpr (std::is_void_v<decltype(fn())>) {
      fn();
      _exit(0);
    } else {
      _exit(fn());
    }
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) {
    ADD_FAILURE() << "fork or waitpid failed";
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : kKilledBy + WTERMSIG(status);
}

// A check in a child (in_child): if `cond` is false, says which on stderr and exits with
// `code`, so that the parent's expectation on the exit status names the check.
#define CHILD_CHECK(cond, code)                                                        \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      fprintf(stderr, "%s:%d: CHILD_CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      _exit(code);                                                                     \
    }                                                                                  \
  } while (0)

// The process's address space and resident memory, in bytes (/proc/self/statm), read
// without allocating: children call it under a lowered RLIMIT_AS. Aborts if the file
// cannot be read: no number is better than a wrong one.
struct Statm {
  size_t size, resident;
};
inline Statm statm() {
  char text[128] = {};
  const int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  const ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
  if (fd >= 0) close(fd);
  if (n <= 0) {
    perror("statm: /proc/self/statm");
    abort();
  }
  char *rest;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t size = strtoull(text, &rest, 10);
  return {size * page, strtoull(rest, nullptr, 10) * page};
}

inline size_t rss_bytes() { return statm().resident; }

// Minor page faults of the process so far: a page touched for the first time costs one.
inline long minor_faults() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

}  // namespace test_support
