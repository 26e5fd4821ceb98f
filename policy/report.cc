// report.cc: see report.h.
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>

namespace allocscope {
namespace {

// The log file ("" for stderr). Each report opens it, appends and closes it again: a
// descriptor kept open would be visible to the program (and inherited across exec by
// tools that pass descriptors on), and would write into whatever file later reuses its
// number if the program closed it.
// Guards the path: a report copies it under the lock, set_report_file() writes it under the
// lock. A report only tries the lock (it may run in a fork child whose parent held it, or
// inside a signal-ish context): if it is busy, that report goes to stderr.
pthread_mutex_t g_report_mutex = PTHREAD_MUTEX_INITIALIZER;
char g_report_path[PATH_MAX];

int open_expanded(const char *path, int flags) {
  char expanded[PATH_MAX];
  if (!expand_path(path, expanded, sizeof(expanded))) return -ENAMETOOLONG;
  int fd = open(expanded, flags | O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  return fd < 0 ? -errno : fd;
}

// Writes one report: to the log file if it opens, otherwise to stderr.
void emit(const iovec *parts, int count) {
  char path[PATH_MAX] = "";
  if (pthread_mutex_trylock(&g_report_mutex) == 0) {
    memcpy(path, g_report_path, sizeof(path));
    pthread_mutex_unlock(&g_report_mutex);
  }
  int fd = path[0] != '\0' ? open_expanded(path, O_APPEND) : -1;
  const int out = fd >= 0 ? fd : STDERR_FILENO;
  while (writev(out, parts, count) < 0 && errno == EINTR) {
  }
  if (fd >= 0) close(fd);
}

}  // namespace

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
  // One report, one line, whatever text it quotes (a configuration value may hold a
  // newline): control characters become '?'.
  for (size_t i = sizeof(kPrefix) - 1; i < len; ++i)
    if (static_cast<unsigned char>(line[i]) < 0x20 || line[i] == 0x7f) line[i] = '?';
  line[len++] = '\n';
  const iovec part = {line, len};
  emit(&part, 1);
  errno = saved_errno;
}

void report_text(const char *prefix, const char *text) {
  const int saved_errno = errno;
  static const char kPrefix[] = "allocscope: ";
  iovec parts[4] = {{const_cast<char *>(kPrefix), sizeof(kPrefix) - 1},
                    {const_cast<char *>(prefix), strlen(prefix)},
                    {const_cast<char *>(text), strlen(text)},
                    {const_cast<char *>("\n"), 1}};
  emit(parts, 4);
  errno = saved_errno;
}

int set_report_file(const char *path) {
  if (strlen(path) >= PATH_MAX) return -ENAMETOOLONG;
  if (path[0] != '\0') {
    const int fd = open_expanded(path, O_APPEND);  // fail now, not at the first report
    if (fd < 0) return fd;
    close(fd);
  }
  pthread_mutex_lock(&g_report_mutex);
  strcpy(g_report_path, path);
  pthread_mutex_unlock(&g_report_mutex);
  return 0;
}

int open_output_file(const char *path) { return open_expanded(path, O_TRUNC); }

}  // namespace allocscope
