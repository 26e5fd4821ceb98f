// report.cc: see report.h.
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"

namespace allocscope {
namespace {

constexpr char kPrefix[] = "allocscope: ";

// ---- The quiet section every write of ours runs in ----

// Signals a write of ours could raise: SIGPIPE (a pipe nobody reads any more), SIGXFSZ (past
// RLIMIT_FSIZE), SIGTTOU (a background process writing to a terminal with tostop; a blocked
// SIGTTOU lets the write through without a signal). Held off for the write; a SIGPIPE or
// SIGXFSZ that was not pending before is ours and is consumed, one that was is the program's
// and stays. Cancellation is off too: the callers run inside malloc, which is not a
// cancellation point, while write(2) and open(2) are. errno is as it was before.
class QuietSection {
 public:
  QuietSection() : errno_(errno) {
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state_);
    sigset_t quiet;
    sigemptyset(&quiet);
    sigaddset(&quiet, SIGPIPE);
    sigaddset(&quiet, SIGXFSZ);
    sigaddset(&quiet, SIGTTOU);
    pthread_sigmask(SIG_BLOCK, &quiet, &saved_mask_);
    sigpending(&pending_before_);
  }
  ~QuietSection() {
    sigset_t pending;
    sigpending(&pending);
    for (int sig : {SIGPIPE, SIGXFSZ}) {
      if (!sigismember(&pending, sig) || sigismember(&pending_before_, sig)) continue;
      sigset_t one;
      sigemptyset(&one);
      sigaddset(&one, sig);
      const timespec now = {0, 0};
      while (sigtimedwait(&one, nullptr, &now) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &saved_mask_, nullptr);
    pthread_setcancelstate(cancel_state_, nullptr);
    errno = errno_;
  }
  QuietSection(const QuietSection &) = delete;
  QuietSection &operator=(const QuietSection &) = delete;

 private:
  int errno_;
  int cancel_state_;
  sigset_t saved_mask_;
  sigset_t pending_before_;
};

uint64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

enum class Via { kWrite, kSend };

// Writes the parts (at most 4) to fd. On a non-blocking fd a full destination ends it:
// false, unless `patient`, which waits for room up to a second in all.
bool write_parts(int fd, const iovec *parts, int count, Via via, bool patient) {
  iovec v[4];
  int n = 0;
  for (int i = 0; i < count && n < 4; ++i)
    if (parts[i].iov_len != 0) v[n++] = parts[i];
  const uint64_t deadline = patient ? now_ms() + 1000 : 0;
  iovec *next = v;
  while (n > 0) {
    ssize_t w;
    if (via == Via::kSend) {
      msghdr msg = {};
      msg.msg_iov = next;
      msg.msg_iovlen = static_cast<size_t>(n);
      w = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else {
      w = writev(fd, next, n);
    }
    if (w < 0) {
      if (errno == EINTR) continue;
      const uint64_t now = patient ? now_ms() : 0;
      if ((errno == EAGAIN || errno == EWOULDBLOCK) && patient && now < deadline) {
        pollfd p = {fd, POLLOUT, 0};
        poll(&p, 1, static_cast<int>(deadline - now));
        continue;
      }
      return false;
    }
    size_t done = static_cast<size_t>(w);
    while (n > 0 && done >= next->iov_len) {
      done -= next->iov_len;
      ++next;
      --n;
    }
    if (n > 0) {
      next->iov_base = static_cast<char *>(next->iov_base) + done;
      next->iov_len -= done;
    }
  }
  return true;
}

// ---- The stderr the process started with ----

// What fd 2 was when this object started (a preloaded library starts before main). Reports
// go to fd 2 only while it still is that file, unless log_file is /dev/stderr (g_follow).
struct Stream {
  dev_t dev;
  ino_t ino;
};
Stream g_stream;
enum : int { kUnrecorded, kRecording, kRecorded, kNoStream };
std::atomic<int> g_stream_state{kUnrecorded};

void record_stream() {
  int expected = kUnrecorded;
  if (!g_stream_state.compare_exchange_strong(expected, kRecording)) return;
  const int saved_errno = errno;
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) {
    g_stream_state.store(kNoStream, std::memory_order_release);
    errno = saved_errno;
    return;
  }
  g_stream.dev = st.st_dev;
  g_stream.ino = st.st_ino;
  g_stream_state.store(kRecorded, std::memory_order_release);
  errno = saved_errno;
}

// First among this object's constructors, so that it sees fd 2 before anything else runs.
// A report made earlier (another library's constructor) records it then.
__attribute__((constructor(101))) void record_stream_at_start() { record_stream(); }

const Stream *stream() {
  int state = g_stream_state.load(std::memory_order_acquire);
  if (state == kUnrecorded) {
    record_stream();
    state = g_stream_state.load(std::memory_order_acquire);
  }
  return state == kRecorded ? &g_stream : nullptr;
}

bool is_stream(const struct stat &st, const Stream &s) {
  return st.st_dev == s.dev && st.st_ino == s.ino;
}

// log_file:/dev/stderr: reports follow fd 2 wherever the program points it (a program that
// redirects its own stderr to capture it, as a test harness does).
std::atomic<bool> g_follow{false};

// Writes to the original stderr (or fd 2, following): false if fd 2 is no longer it, or it
// is full or closed.
bool write_stderr(const iovec *parts, int count, bool patient) {
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  if (!g_follow.load(std::memory_order_relaxed)) {
    const Stream *s = stream();
    if (s == nullptr || !is_stream(st, *s)) return false;
  }
  if (S_ISSOCK(st.st_mode)) return write_parts(STDERR_FILENO, parts, count, Via::kSend, patient);
  if (!S_ISFIFO(st.st_mode) && !(S_ISCHR(st.st_mode) && isatty(STDERR_FILENO)))
    return write_parts(STDERR_FILENO, parts, count, Via::kWrite, patient);  // files never wait
  // A pipe or terminal, through a description of our own: O_NONBLOCK on fd 2's would be
  // shared with the program (and every process that inherited it); /proc/self/fd/2 opens
  // the same pipe or terminal anew. (A regular file is not reopened: fd 2 may share its
  // offset with fd 1.)
  const int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd >= 0) {
    struct stat mine;
    const bool ok = fstat(fd, &mine) == 0 && is_stream(mine, {st.st_dev, st.st_ino}) &&
                    write_parts(fd, parts, count, Via::kWrite, patient);
    close(fd);
    return ok;
  }
  if (errno == ENXIO) return false;  // a pipe with no reader left
  // No /proc, or the terminal may not be opened: fd 2 itself, if it has room now (a
  // concurrent writer could still fill it first; this is the fallback).
  pollfd p = {STDERR_FILENO, POLLOUT, 0};
  if (poll(&p, 1, 0) != 1 || (p.revents & POLLOUT) == 0) return false;
  return write_parts(STDERR_FILENO, parts, count, Via::kWrite, false);
}

// ---- Opening output files ----

const char *describe(int err) {
  const char *text = strerrordesc_np(err);  // untranslated: no locale, no allocation
  return text != nullptr ? text : "error";
}

constexpr char kSymlinkInPath[] = "a directory in the path is a symbolic link";

// Opens the directory part of an absolute path without following any symbolic link:
// openat2(RESOLVE_NO_SYMLINKS) where the kernel has it, otherwise one openat per
// component with O_NOFOLLOW|O_DIRECTORY.
int open_directory(const char *dir, const char **why) {
  static std::atomic<bool> no_openat2{false};
  if (!no_openat2.load(std::memory_order_relaxed)) {
    open_how how = {};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_NO_SYMLINKS;
    const long fd = syscall(SYS_openat2, AT_FDCWD, dir, &how, sizeof(how));
    if (fd >= 0) return static_cast<int>(fd);
    if (errno == ENOSYS) no_openat2.store(true, std::memory_order_relaxed);
    if (errno != ENOSYS && errno != EPERM && errno != E2BIG) {  // EPERM: a seccomp filter
      *why = errno == ELOOP ? kSymlinkInPath : describe(errno);
      return -errno;
    }
  }
  int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return *why = describe(errno), -errno;
  for (const char *p = dir; *p != '\0';) {
    while (*p == '/') ++p;
    const char *end = strchrnul(p, '/');
    const size_t len = static_cast<size_t>(end - p);
    if (len == 0 || (len == 1 && p[0] == '.')) {
      p = end;
      continue;
    }
    char name[NAME_MAX + 1];
    if (len > NAME_MAX) {
      close(fd);
      return *why = describe(ENAMETOOLONG), -ENAMETOOLONG;
    }
    memcpy(name, p, len);
    name[len] = '\0';
    const int next = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) {
      int err = errno;
      struct stat st;
      if ((err == ENOTDIR || err == ELOOP) && fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(st.st_mode))
        err = ELOOP;
      *why = err == ELOOP ? kSymlinkInPath : describe(err);
      close(fd);
      return -err;
    }
    close(fd);
    fd = next;
    p = end;
  }
  return fd;
}

// Why a file may not be written, or nullptr if it may: only regular files of the caller's
// own with no other name (a hard link planted by someone else would have us write into the
// file it names), and the null device.
const char *refusal(const struct stat &st) {
  if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3)) return nullptr;  // /dev/null
  if (S_ISFIFO(st.st_mode)) return "it is a FIFO, not a regular file";
  if (!S_ISREG(st.st_mode)) return "it is not a regular file";
  if (st.st_uid != geteuid()) return "it is owned by another user";
  if (st.st_nlink > 1) return "it has other hard links";
  return nullptr;
}

// The last component, opened in dir (a descriptor that resolved everything before it).
int open_in(int dir, const char *name, Output how, bool fresh, const char **why) {
  for (int attempt = 0; attempt < 3; ++attempt) {
    struct stat before;
    const bool exists = fstatat(dir, name, &before, AT_SYMLINK_NOFOLLOW) == 0;
    if (!exists && errno != ENOENT) return *why = describe(errno), -errno;
    if (exists) {
      if (S_ISLNK(before.st_mode)) return *why = "it is a symbolic link", -ELOOP;
      if (fresh) return *why = "it exists already (a per-process name is created fresh)", -EEXIST;
      if (const char *bad = refusal(before)) return *why = bad, -EPERM;
    }
    // Checked before opening so that a FIFO or a device is never opened at all; checked
    // again on the descriptor, in case the name changed in between. Non-blocking: should a
    // FIFO appear in between, opening it does not wait for a reader. No O_TRUNC: a file is
    // cut only once it is known to be ours.
    int flags = O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    if (how == Output::kAppend) flags |= O_APPEND;
    if (!exists) flags |= O_CREAT | O_EXCL;
    const int fd = openat(dir, name, flags, 0644);
    if (fd < 0) {
      const int err = errno;
      if ((!exists && err == EEXIST && !fresh) || (exists && err == ENOENT)) continue;  // raced
      *why = err == ELOOP ? "it is a symbolic link"
             : err == EEXIST ? "it exists already (a per-process name is created fresh)"
                             : describe(err);
      return -err;
    }
    struct stat now;
    const char *bad = fstat(fd, &now) != 0 ? describe(errno) : refusal(now);
    if (bad == nullptr && exists && (now.st_dev != before.st_dev || now.st_ino != before.st_ino))
      bad = "it was replaced while being opened";
    if (bad == nullptr && how == Output::kWhole && S_ISREG(now.st_mode) && ftruncate(fd, 0) != 0)
      bad = describe(errno);
    if (bad != nullptr) {
      close(fd);
      return *why = bad, -EPERM;
    }
    return fd;
  }
  return *why = "it keeps changing", -EAGAIN;
}

// Resolves a relative path against the current directory (absolute paths as they are).
bool absolute(std::string_view value, char (&out)[PATH_MAX]) {
  if (value.empty() || memchr(value.data(), '\0', value.size()) != nullptr) return false;
  size_t n = 0;
  if (value[0] != '/') {
    if (getcwd(out, sizeof(out)) == nullptr || out[0] != '/') return false;
    n = strlen(out);
    if (out[n - 1] != '/') out[n++] = '/';
  }
  if (n + value.size() >= sizeof(out)) return false;
  memcpy(out + n, value.data(), value.size());
  out[n + value.size()] = '\0';
  return true;
}

// "stderr": the stderr the process started with. "/dev/stderr": whatever fd 2 is at each
// report, as that name means.
bool means_stderr(std::string_view path) {
  return path.empty() || path == "stderr" || path == "/dev/stderr";
}

// ---- Reports ----

PublishedPath g_log;  // log_file, absolute ("%p" unexpanded); empty: stderr
std::atomic<bool> g_log_refusal_said{false};

void emit(const iovec *parts, int count, bool patient) {
  QuietSection quiet;
  bool written = false;
  char path[PATH_MAX];
  if (g_log.get(path, sizeof(path))) {
    const char *why = nullptr;
    written = append_line(path, parts, count, &why);
    if (!written && why != nullptr && !g_log_refusal_said.exchange(true)) {
      char expanded[PATH_MAX], line[PATH_MAX + 256];
      if (!expand_path(path, expanded, sizeof(expanded))) strcpy(expanded, path);
      const int n = snprintf(line, sizeof(line),
                             "%slog_file: cannot write '%s': %s; reports go to stderr\n",
                             kPrefix, expanded, why);
      const iovec part = {line, n > 0 && static_cast<size_t>(n) < sizeof(line)
                                    ? static_cast<size_t>(n) : 0};
      if (!write_stderr(&part, 1, false)) stats::bump(stats::g_counters.reports_dropped);
    }
  }
  if (!written) written = write_stderr(parts, count, patient);
  if (!written) stats::bump(stats::g_counters.reports_dropped);
}

}  // namespace

// ---- PublishedPath ----
// Each buffer is a seqlock (odd while written) so that a reader can tell a copy that a
// second change overwrote; the buffer a reader is sent to by current_ is never the one
// being written, so a fork child whose parent was in the middle of a change still reads
// the last complete path. The words are atomics: a reader racing a writer is expected.

void PublishedPath::set(const char *path) {
  const unsigned next = current_.load(std::memory_order_relaxed) ^ 1u;
  Buffer &b = buffers_[next];
  const uint64_t seq = b.seq.load(std::memory_order_relaxed);
  b.seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  const size_t len = strnlen(path, PATH_MAX - 1);
  for (size_t w = 0; w < kWords; ++w) {
    char bytes[sizeof(uint64_t)] = {};
    const size_t at = w * sizeof(uint64_t);
    if (at < len) memcpy(bytes, path + at, len - at < sizeof(bytes) ? len - at : sizeof(bytes));
    uint64_t word;
    memcpy(&word, bytes, sizeof(word));
    b.words[w].store(word, std::memory_order_relaxed);
    if (at + sizeof(uint64_t) > len) break;  // this word holds the terminating NUL
  }
  b.seq.store(seq + 2, std::memory_order_release);
  current_.store(next, std::memory_order_release);
}

bool PublishedPath::get(char *out, size_t cap) const {
  if (cap < PATH_MAX) return false;
  for (int attempt = 0; attempt < 64; ++attempt) {
    const Buffer &b = buffers_[current_.load(std::memory_order_acquire)];
    const uint64_t seq = b.seq.load(std::memory_order_acquire);
    if (seq & 1) continue;  // rewritten after current_ was read: current_ has moved on
    bool ended = false;
    for (size_t w = 0; w < kWords && !ended; ++w) {
      const uint64_t word = b.words[w].load(std::memory_order_relaxed);
      memcpy(out + w * sizeof(uint64_t), &word, sizeof(word));
      ended = memchr(&word, 0, sizeof(word)) != nullptr;
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    if (b.seq.load(std::memory_order_relaxed) != seq) continue;
    out[PATH_MAX - 1] = '\0';
    return out[0] != '\0';
  }
  return false;
}

bool PublishedPath::empty() const {
  const Buffer &b = buffers_[current_.load(std::memory_order_acquire)];
  const uint64_t word = b.words[0].load(std::memory_order_relaxed);
  char first;
  memcpy(&first, &word, 1);  // the word holds the bytes in path order
  return first == '\0';
}

// ---- Public functions ----

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
  QuietSection quiet;
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

int open_output(const char *path, Output how, const char **why) {
  const char *ignored;
  if (why == nullptr) why = &ignored;
  char expanded[PATH_MAX];
  if (!expand_path(path, expanded, sizeof(expanded)))
    return *why = describe(ENAMETOOLONG), -ENAMETOOLONG;
  if (expanded[0] != '/') return *why = "not an absolute path", -EINVAL;
  // Split into the directory (opened first) and the file's name in it.
  char *slash = strrchr(expanded, '/');
  const char *name = slash + 1;
  if (*name == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    return *why = "it names a directory", -EISDIR;
  char file[NAME_MAX + 1];
  if (strlen(name) > NAME_MAX) return *why = describe(ENAMETOOLONG), -ENAMETOOLONG;
  strcpy(file, name);
  slash[slash == expanded ? 1 : 0] = '\0';  // "/name" keeps "/" as its directory
  const int dir = open_directory(expanded, why);
  if (dir < 0) return dir;
  // "%p" makes a name this process alone should own: a whole file is created fresh, so a
  // file planted under a predictable name is refused rather than written.
  const bool fresh = how == Output::kWhole && strstr(path, "%p") != nullptr;
  const int fd = open_in(dir, file, how, fresh, why);
  close(dir);
  return fd;
}

int open_output_reported(const char *key, const char *path, Output how) {
  const char *why = "";
  const int fd = open_output(path, how, &why);
  if (fd < 0) {
    char expanded[PATH_MAX];
    if (!expand_path(path, expanded, sizeof(expanded))) snprintf(expanded, sizeof(expanded), "%s", path);
    report("%s: cannot write '%s': %s", key, expanded, why);
  }
  return fd;
}

bool append_line(const char *path, const iovec *parts, int count, const char **why) {
  QuietSection quiet;
  const int fd = open_output(path, Output::kAppend, why);
  if (fd < 0) return false;
  const bool ok = write_parts(fd, parts, count, Via::kWrite, false);
  close(fd);
  return ok;
}

void report(const char *fmt, ...) {
  const int saved_errno = errno;
  char line[1024];
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
  emit(&part, 1, false);
  errno = saved_errno;
}

void report_text(const char *prefix, const char *text) {
  const int saved_errno = errno;
  iovec parts[4] = {{const_cast<char *>(kPrefix), sizeof(kPrefix) - 1},
                    {const_cast<char *>(prefix), strlen(prefix)},
                    {const_cast<char *>(text), strlen(text)},
                    {const_cast<char *>("\n"), 1}};
  emit(parts, 4, true);
  errno = saved_errno;
}

int set_report_file(const char *path) {
  if (means_stderr(path)) {
    g_log.set("");
    g_follow.store(strcmp(path, "/dev/stderr") == 0);
    g_log_refusal_said.store(false);
    return 0;
  }
  char resolved[PATH_MAX];
  if (!absolute(path, resolved)) return -ENAMETOOLONG;
  const int fd = open_output(resolved, Output::kAppend, nullptr);  // fail now, not at a report
  if (fd < 0) return fd;
  close(fd);
  g_log.set(resolved);
  g_follow.store(false);
  g_log_refusal_said.store(false);
  return 0;
}

bool output_path_value(std::string_view value, char (&resolved)[PATH_MAX]) {
  return absolute(value, resolved);
}

bool log_file_value(std::string_view value, char (&resolved)[PATH_MAX]) {
  char path[PATH_MAX];
  if (means_stderr(value)) {
    if (value.empty()) return false;
    memcpy(path, value.data(), value.size());
    path[value.size()] = '\0';
    set_report_file(path);
    strcpy(resolved, path);
    return true;
  }
  if (!absolute(value, path) || set_report_file(path) != 0) return false;
  memcpy(resolved, path, sizeof(path));
  return true;
}

}  // namespace allocscope
