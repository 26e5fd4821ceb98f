// tree_budget.cc: see tree_budget.h.
#include "tree_budget.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "report.h"
#include "sys.h"
#include "thread_state.h"

namespace allocscope {
namespace tree {
namespace {

constexpr uint32_t kMagic = 0x41535452;  // "ASTR"
// The layout's version: a member refuses a tree of another layout (and runs on its own).
// When you change Shared or Slot, change this.
constexpr uint32_t kVersion = 1;
constexpr int kSlots = 4096;
constexpr char kPrefix[] = "/allocscope-tree-";

struct Slot {
  std::atomic<int32_t> pid;      // 0 = free
  std::atomic<uint64_t> start;   // its start time (/proc/PID/stat), against pid reuse
  std::atomic<int64_t> grant;    // what it holds of the tree's limit
};

struct Shared {
  uint32_t magic;
  uint32_t version;
  uint32_t uid;
  uint32_t reserved;
  std::atomic<int64_t> limit;
  std::atomic<int64_t> charged;   // the sum of the grants
  std::atomic<uint32_t> futex;    // bumped when grant comes back
  std::atomic<int32_t> waiters;
  char cgroup_dir[512];           // limit:cgroup of the creator ("" = none)
  Slot slots[kSlots];
};

Shared *g_shared = nullptr;
Slot *g_slot = nullptr;
char g_name[64];

// The process's start time in clock ticks since boot (field 22 of /proc/PID/stat); 0 if it
// cannot be read. Another process with the same pid later has another start time.
uint64_t start_time(int pid) {
  char path[64], text[1024];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  const ssize_t n = read(fd, text, sizeof(text) - 1);
  close(fd);
  if (n <= 0) return 0;
  text[n] = '\0';
  const char *p = strrchr(text, ')');  // the command name may hold spaces and parentheses
  if (p == nullptr) return 0;
  for (int field = 2; field < 22 && *p != '\0'; ++p)
    if (*p == ' ') ++field;
  return strtoull(p, nullptr, 10);
}

bool gone(const Slot &s, int pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return true;
  const uint64_t start = start_time(pid);
  return start != 0 && start != s.start.load();
}

// Frees the slots of members that are gone, giving their grants back. Returns the bytes.
int64_t reap() {
  const int self = getpid();
  int64_t freed = 0;
  for (Slot &s : g_shared->slots) {
    int pid = s.pid.load();
    if (pid == 0 || pid == self || !gone(s, pid)) continue;
    if (!s.pid.compare_exchange_strong(pid, -pid)) continue;  // claimed by this reaper
    const int64_t grant = s.grant.exchange(0);
    g_shared->charged.fetch_sub(grant);
    freed += grant;
    s.pid.store(0);
  }
  return freed;
}

// A slot for this process: the one it had before an exec (same pid, same start time), or a
// free one. nullptr when the table is full.
Slot *take_slot() {
  const int self = getpid();
  const uint64_t start = start_time(self);
  for (Slot &s : g_shared->slots) {
    if (s.pid.load() != self) continue;
    // The image before an exec held this grant; its memory is gone.
    g_shared->charged.fetch_sub(s.grant.exchange(0));
    s.start.store(start);
    return &s;
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    for (Slot &s : g_shared->slots) {
      int free_pid = 0;
      if (!s.pid.compare_exchange_strong(free_pid, self)) continue;
      s.start.store(start);
      s.grant.store(0);
      return &s;
    }
    reap();
  }
  return nullptr;
}

void wake_all() {
  g_shared->futex.fetch_add(1);
  if (g_shared->waiters.load() != 0)
    syscall(SYS_futex, &g_shared->futex, FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

bool attach(Shared *shared, const char *name) {
  g_shared = shared;
  g_slot = take_slot();
  if (g_slot == nullptr) {
    report("limit_scope:tree: the tree %s has %d members already; this process runs under "
           "its own budget",
           name, kSlots);
    g_shared = nullptr;
    return false;
  }
  snprintf(g_name, sizeof(g_name), "%s", name);
  return true;
}

}  // namespace

bool create(int64_t limit, const char *cgroup_dir) {
  unsigned char random[16];
  if (getrandom(random, sizeof(random), 0) != sizeof(random)) return false;
  char name[64];
  int n = snprintf(name, sizeof(name), "%s%u-", kPrefix, static_cast<unsigned>(geteuid()));
  for (unsigned char byte : random) n += snprintf(name + n, sizeof(name) - n, "%02x", byte);
  const int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    report("limit_scope:tree: cannot create the shared budget %s: %s; this process runs under "
           "its own budget",
           name, strerror(errno));
    return false;
  }
  void *mem = MAP_FAILED;
  if (ftruncate(fd, sizeof(Shared)) == 0)
    mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (mem == MAP_FAILED) {
    report("limit_scope:tree: cannot map the shared budget %s: %s", name, strerror(errno));
    shm_unlink(name);
    return false;
  }
  auto *shared = static_cast<Shared *>(mem);  // zero-filled by ftruncate
  shared->version = kVersion;
  shared->uid = static_cast<uint32_t>(geteuid());
  shared->limit.store(limit);
  snprintf(shared->cgroup_dir, sizeof(shared->cgroup_dir), "%s", cgroup_dir);
  std::atomic_thread_fence(std::memory_order_release);
  shared->magic = kMagic;
  if (!attach(shared, name)) return false;
  EngineGuard unpoliced;  // setenv allocates: bookkeeping, not the program's memory
  setenv(kEnv, name, 1);
  return true;
}

bool join_from_environment() {
  const char *name = secure_getenv(kEnv);
  if (name == nullptr || name[0] == '\0') return false;
  const auto refuse = [name](const char *why) {
    report("%s=%s: %s; this process runs under its own budget", kEnv, name, why);
    return false;
  };
  if (strncmp(name, kPrefix, sizeof(kPrefix) - 1) != 0 || strchr(name + 1, '/') != nullptr ||
      strlen(name) >= sizeof(g_name))
    return refuse("not the name of an allocscope tree budget");
  const int fd = shm_open(name, O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0)
    return refuse(errno == ENOENT ? "the shared budget is gone (its creator has exited)"
                                  : strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & 0777) != 0600 ||
      static_cast<size_t>(st.st_size) != sizeof(Shared)) {
    close(fd);
    return refuse("the shared budget belongs to another user, or is not private to its owner, "
                  "or has another size");
  }
  void *mem = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (mem == MAP_FAILED) return refuse(strerror(errno));
  auto *shared = static_cast<Shared *>(mem);
  if (shared->magic != kMagic || shared->version != kVersion || shared->uid != geteuid()) {
    munmap(mem, sizeof(Shared));
    return refuse("the shared budget has a layout this version does not know");
  }
  return attach(shared, name);
}

void leave() {
  // Not in a vfork child (posix_spawn's), which shares this process's memory and slot.
  if (g_shared == nullptr || g_slot->pid.load() != getpid()) return;
  give_back(g_slot->grant.load());
  g_slot->pid.store(0);
  // The last member to leave removes the name (the creator is often a shell that ends
  // first, or with _exit).
  reap();
  if (members() == 0) shm_unlink(g_name);
  g_shared = nullptr;
  g_slot = nullptr;
}

void postfork_child() {
  if (g_shared == nullptr) return;
  Slot *slot = take_slot();
  if (slot == nullptr) {
    g_shared = nullptr;
    g_slot = nullptr;
    return;
  }
  g_slot = slot;
}

bool active() { return g_shared != nullptr; }

void wake() {
  if (g_shared != nullptr) wake_all();
}

int64_t limit() { return g_shared != nullptr ? g_shared->limit.load() : 0; }

void set_limit(int64_t bytes) {
  if (g_shared == nullptr) return;
  g_shared->limit.store(bytes);
  wake_all();  // a higher limit may satisfy waiters
}

const char *cgroup_dir() { return g_shared != nullptr ? g_shared->cgroup_dir : ""; }

int64_t grant() { return g_slot != nullptr ? g_slot->grant.load() : 0; }

int64_t take(int64_t wanted, int64_t at_least) {
  if (g_shared == nullptr || wanted <= 0) return 0;
  for (int attempt = 0; attempt < 2; ++attempt) {
    int64_t charged = g_shared->charged.load();
    for (;;) {
      const int64_t room = g_shared->limit.load() - charged;
      const int64_t got = room >= wanted ? wanted : room;
      if (got < at_least || got <= 0) break;
      if (g_shared->charged.compare_exchange_weak(charged, charged + got)) {
        g_slot->grant.fetch_add(got);
        return got;
      }
    }
    if (reap() == 0) break;  // nothing came back: no second try
  }
  return 0;
}

void give_back(int64_t bytes) {
  if (g_shared == nullptr || bytes <= 0) return;
  g_slot->grant.fetch_sub(bytes);
  g_shared->charged.fetch_sub(bytes);
  wake_all();
}

void wait(uint64_t timeout_ns) {
  if (g_shared == nullptr) return;
  const sys::CancelDeferral no_cancel;  // FUTEX_WAIT through syscall(): no cancellation
  const uint32_t seen = g_shared->futex.load();
  g_shared->waiters.fetch_add(1);
  timespec timeout{static_cast<time_t>(timeout_ns / 1000000000u),
                   static_cast<long>(timeout_ns % 1000000000u)};
  const int saved_errno = errno;
  syscall(SYS_futex, &g_shared->futex, FUTEX_WAIT, seen, &timeout, nullptr, 0);
  errno = saved_errno;
  g_shared->waiters.fetch_sub(1);
}

int members() {
  if (g_shared == nullptr) return 1;
  int n = 0;
  for (const Slot &s : g_shared->slots) n += s.pid.load() > 0;
  return n;
}

Stats stats() {
  if (g_shared == nullptr) return Stats{0, 0, 0, 0};
  return Stats{g_shared->limit.load(), g_shared->charged.load(), g_slot->grant.load(), members()};
}

}  // namespace tree
}  // namespace allocscope
