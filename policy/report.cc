// report.cc: see report.h.
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>

namespace allocscope {
namespace {

std::atomic<int> g_report_fd{STDERR_FILENO};

// Copies `path` into out with each "%p" replaced by the pid; false if it does not fit.
bool expand_path(const char *path, char *out, size_t cap) {
  size_t n = 0;
  for (const char *s = path; *s != '\0'; ++s) {
    if (s[0] == '%' && s[1] == 'p') {
      int w = snprintf(out + n, cap - n, "%d", static_cast<int>(getpid()));
      if (w < 0 || static_cast<size_t>(w) >= cap - n) return false;
      n += static_cast<size_t>(w);
      ++s;
    } else {
      if (n + 1 >= cap) return false;
      out[n++] = *s;
    }
  }
  out[n] = '\0';
  return true;
}

int open_expanded(const char *path, int flags) {
  char expanded[4096];
  if (!expand_path(path, expanded, sizeof(expanded))) return -ENAMETOOLONG;
  int fd = open(expanded, flags | O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  return fd < 0 ? -errno : fd;
}

}  // namespace

bool write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t w = write(fd, buf, len);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    buf += w;
    len -= static_cast<size_t>(w);
  }
  return true;
}

void report(const char *fmt, ...) {
  const int saved_errno = errno;
  char line[1024];
  static const char kPrefix[] = "allocscope: ";
  memcpy(line, kPrefix, sizeof(kPrefix) - 1);
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line + sizeof(kPrefix) - 1, sizeof(line) - sizeof(kPrefix), fmt, ap);
  va_end(ap);
  size_t len = sizeof(kPrefix) - 1 + (n < 0 ? 0 : static_cast<size_t>(n));
  if (len > sizeof(line) - 2) len = sizeof(line) - 2;
  line[len++] = '\n';
  write_all(g_report_fd.load(std::memory_order_relaxed), line, len);
  errno = saved_errno;
}

void report_text(const char *prefix, const char *text) {
  const int saved_errno = errno;
  static const char kPrefix[] = "allocscope: ";
  iovec parts[4] = {{const_cast<char *>(kPrefix), sizeof(kPrefix) - 1},
                    {const_cast<char *>(prefix), strlen(prefix)},
                    {const_cast<char *>(text), strlen(text)},
                    {const_cast<char *>("\n"), 1}};
  while (writev(g_report_fd.load(std::memory_order_relaxed), parts, 4) < 0 && errno == EINTR) {
  }
  errno = saved_errno;
}

int set_report_file(const char *path) {
  int fd = STDERR_FILENO;
  if (path[0] != '\0') {
    fd = open_expanded(path, O_APPEND);
    if (fd < 0) return fd;
  }
  int old = g_report_fd.exchange(fd);
  if (old != STDERR_FILENO) close(old);
  return 0;
}

int open_output_file(const char *path) { return open_expanded(path, O_TRUNC); }

}  // namespace allocscope
