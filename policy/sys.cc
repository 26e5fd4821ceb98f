// sys.cc: see sys.h.
#include "sys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "compiler.h"
#include "mutex.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace allocscope {
namespace sys {

size_t page_size() {
  static std::atomic<size_t> cached{0};
  size_t page = cached.load(std::memory_order_relaxed);
  if (page == 0) {
    page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    cached.store(page, std::memory_order_relaxed);
  }
  return page;
}

size_t page_round(size_t n) {
  const size_t page = page_size();
  return n > SIZE_MAX - (page - 1) ? SIZE_MAX : (n + page - 1) & ~(page - 1);
}

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

void sleep_ns(uint64_t ns) {
  const int saved_errno = errno;
  // The system call itself: glibc's nanosleep is a cancellation point, and a cancel
  // acted on inside malloc would unwind through noexcept entry points.
  timespec left{static_cast<time_t>(ns / 1000000000u), static_cast<long>(ns % 1000000000u)};
  while (syscall(SYS_nanosleep, &left, &left) != 0 && errno == EINTR) {
  }
  errno = saved_errno;
}

size_t largest_backable_size() {
  char mode = '0';
  const int fd = open("/proc/sys/vm/overcommit_memory", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (read(fd, &mode, 1) != 1) mode = '0';
    close(fd);
  }
  if (mode == '1') return SIZE_MAX;
  size_t cap = SIZE_MAX;
  struct sysinfo info;
  if (sysinfo(&info) == 0) {
    const unsigned __int128 bytes =
        (static_cast<unsigned __int128>(info.totalram) + info.totalswap) * info.mem_unit;
    if (bytes < cap) cap = static_cast<size_t>(bytes);
  }
  struct rlimit as;
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY && as.rlim_cur < cap)
    cap = static_cast<size_t>(as.rlim_cur);
  return cap;
}

bool thread_is_gone(int pid, int tid) {
  const int saved_errno = errno;
  const bool gone = syscall(SYS_tgkill, pid, tid, 0) != 0 && errno == ESRCH;
  errno = saved_errno;
  return gone;
}

CancelDeferral::CancelDeferral() { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &previous_); }
CancelDeferral::~CancelDeferral() { pthread_setcancelstate(previous_, nullptr); }

bool reserve_range(void *at, size_t len) {
  return mmap(at, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
              -1, 0) != MAP_FAILED;
}

bool populate(void *at, size_t len) {
  if (madvise(at, len, MADV_POPULATE_WRITE) == 0) return true;
  if (errno != EINVAL) return false;
  const size_t page = page_size();
  for (size_t off = 0; off < len; off += page) static_cast<volatile char *>(at)[off] = 0;
  return true;
}

size_t resident_bytes() {
  const int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char text[128];
  ssize_t n;
  do n = read(fd, text, sizeof(text) - 1);
  while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return 0;
  text[n] = '\0';
  // "size resident shared ...", in pages.
  const char *p = text;
  while (*p != '\0' && *p != ' ') ++p;
  size_t pages = 0;
  if (*p == ' ')
    for (++p; *p >= '0' && *p <= '9'; ++p) pages = pages * 10 + static_cast<size_t>(*p - '0');
  return pages * page_size();
}

size_t peak_resident_bytes() {
  rusage usage;
  if (syscall(SYS_getrusage, RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<size_t>(usage.ru_maxrss) * 1024;
}

}  // namespace sys

#ifdef ALLOCSCOPE_DEBUG
// The debug checks (compiler.h, mutex.h): one line on stderr, then abort. Written with
// write(2) alone: it may run inside malloc.
namespace {
__thread uint8_t t_held[static_cast<int>(LockRank::kCount)]
    __attribute__((tls_model("initial-exec")));

[[noreturn]] void die(const char *a, const char *b, const char *c) {
  const char *const parts[] = {"allocscope: debug check failed: ", a, b, c, "\n"};
  for (const char *s : parts)
    if (write(STDERR_FILENO, s, strlen(s)) < 0) break;
  abort();
}
}  // namespace

void debug_assert_failed(const char *expr, const char *file, int) { die(expr, " at ", file); }

void witness_lock(LockRank rank) {
  for (int r = static_cast<int>(rank) + 1; r < static_cast<int>(LockRank::kCount); ++r)
    if (t_held[r] != 0) die("lock order: a lock of lower rank taken while one of higher ", "", "rank is held (mutex.h)");
  ++t_held[static_cast<int>(rank)];
}

void witness_unlock(LockRank rank) {
  if (t_held[static_cast<int>(rank)]-- == 0) die("unlock of a lock not held", "", "");
}
#endif

}  // namespace allocscope
