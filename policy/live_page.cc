// live_page.cc: see live_page.h.
#include "live_page.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "budget.h"
#include "control.h"
#include "counters.h"
#include "exit_signals.h"
#include "live_page_format.h"
#include "report.h"
#include "stats_json.h"
#include "stats_summary.h"
#include "sys.h"

namespace allocscope {
namespace live_page {
namespace {

using live::Page;

std::atomic<Page *> g_page{nullptr};
char g_path[PATH_MAX];  // DIR/PID.page, to remove it
std::atomic<uint64_t> g_text_due_ns{0};
// The text (JSON, summary) is refreshed this often: it reads jemalloc's stats.
constexpr uint64_t kTextEveryNs = 200 * sys::kNsPerMs;

uint64_t unix_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

// Reads a small /proc file into buf (NUL-terminated); its length, or -1.
ssize_t read_small(const char *path, char *buf, size_t len) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n;
  do n = read(fd, buf, len - 1);
  while (n < 0 && errno == EINTR);
  close(fd);
  buf[n > 0 ? n : 0] = '\0';
  return n;
}

// /proc/self/stat's 22nd field, starttime (after the ')' that ends the command name).
uint64_t start_ticks() {
  char stat[1024];
  if (read_small("/proc/self/stat", stat, sizeof(stat)) <= 0) return 0;
  const char *p = strrchr(stat, ')');
  if (p == nullptr) return 0;
  // Fields 3..21 follow; starttime is the 20th after ')'.
  for (int field = 2; field < 22 && *p != '\0'; ++p)
    if (*p == ' ') ++field;
  return strtoull(p, nullptr, 10);
}

// A directory of the user's own, no symbolic link, no access for group or others: its
// descriptor, or -1 with *why set.
int private_dir(const char *path, bool create, const char **why) {
  if (create && mkdir(path, 0700) != 0 && errno != EEXIST) {
    *why = "cannot make the directory";
    return -1;
  }
  const int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    *why = errno == ELOOP || errno == ENOTDIR ? "it is a symbolic link or not a directory"
                                              : "cannot open the directory";
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_uid != getuid()) {
    *why = "it is owned by another user";
  } else if (st.st_mode & 077) {
    *why = "others have access to it (its mode must be 0700)";
  } else {
    return fd;
  }
  close(fd);
  return -1;
}

// The directory live_page.h describes, into out; its descriptor, or -1 with a report.
int page_dir(char (&out)[PATH_MAX]) {
  const char *why = nullptr;
  const char *runtime = secure_getenv("XDG_RUNTIME_DIR");
  if (runtime != nullptr && runtime[0] == '/') {
    const char *unused;
    const int parent = private_dir(runtime, false, &unused);
    if (parent >= 0) {
      close(parent);
      if (snprintf(out, sizeof(out), "%s/allocscope", runtime) < static_cast<int>(sizeof(out))) {
        const int fd = private_dir(out, true, &why);
        if (fd >= 0) return fd;
        report("control: not using '%s': %s", out, why);
      }
    }
  }
  snprintf(out, sizeof(out), "/tmp/allocscope-%u", static_cast<unsigned>(getuid()));
  const int fd = private_dir(out, true, &why);
  if (fd < 0) report("control: cannot use '%s': %s; no live page", out, why);
  return fd;
}

// A fork child has its parent's mapping: it must not write there. It makes its own page
// at its first event: most children exec (and the new image makes its own) or _exit at
// once, and a shell forks often.
std::atomic<bool> g_reopen{false};
// A request is being applied (poll): a control:false in it must leave the mapping to poll,
// which answers in it first.
std::atomic<bool> g_in_request{false};

// One formatter of the page's text at a time (refresh).
std::atomic<bool> g_formatting{false};


void copy_text(const char *from, char *to, size_t cap) {
  size_t n = strlen(from);
  if (n >= cap) n = cap - 1;
  memcpy(to, from, n);
  to[n] = '\0';
}

}  // namespace

void after_fork_child() {
  g_formatting.store(false);  // a thread of the parent may have been formatting
  g_in_request.store(false);
  Page *page = g_page.exchange(nullptr);
  if (page == nullptr) return;
  munmap(page, live::kPageBytes);
  g_path[0] = '\0';
  g_reopen.store(true);
}

Refusal open_page() {
  if (g_page.load() != nullptr) return nullptr;
  char dir[PATH_MAX];
  const int dir_fd = page_dir(dir);
  if (dir_fd < 0) return "no private directory for the live page (see the line above)";
  char name[64], temporary[64];
  snprintf(name, sizeof(name), "%d.page", static_cast<int>(getpid()));
  snprintf(temporary, sizeof(temporary), "%d.page.new", static_cast<int>(getpid()));
  // Made under another name and renamed into place, so a reader never sees a header
  // half written; either name left by an earlier image of this pid (exec) is replaced.
  unlinkat(dir_fd, temporary, 0);
  const int fd = openat(dir_fd, temporary, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    close(dir_fd);
    report("control: cannot create '%s/%s': %s", dir, temporary, strerror(errno));
    return "the live page cannot be created (see the line above)";
  }
  void *map = MAP_FAILED;
  if (ftruncate(fd, live::kPageBytes) == 0)
    map = mmap(nullptr, live::kPageBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) {
    unlinkat(dir_fd, temporary, 0);
    close(dir_fd);
    return "the live page cannot be mapped";
  }
  Page *page = static_cast<Page *>(map);
  page->magic = live::kMagic;
  page->version = live::kVersion;
  page->pid = static_cast<int32_t>(getpid());
  page->uid = static_cast<uint32_t>(getuid());
  page->start_ticks = start_ticks();
  page->started_unix_ms = unix_ms();
  char comm[32];
  if (read_small("/proc/self/comm", comm, sizeof(comm)) > 0) {
    comm[strcspn(comm, "\n")] = '\0';
    copy_text(comm, page->comm, sizeof(page->comm));
  }
  if (renameat(dir_fd, temporary, dir_fd, name) != 0) {
    unlinkat(dir_fd, temporary, 0);
    close(dir_fd);
    munmap(map, live::kPageBytes);
    return "the live page cannot be put in place";
  }
  close(dir_fd);
  if (snprintf(g_path, sizeof(g_path), "%s/%s", dir, name) >= static_cast<int>(sizeof(g_path)))
    g_path[0] = '\0';  // cannot happen (dir fitted PATH_MAX with "/allocscope"); not removed
  g_page.store(page, std::memory_order_release);
  // The counters now; the text at the first event, when the rest of the configuration
  // (control:true comes first from allocscope run) has been applied.
  g_text_due_ns.store(UINT64_MAX, std::memory_order_relaxed);
  refresh(sys::now_ns());
  g_text_due_ns.store(0, std::memory_order_relaxed);
  return nullptr;
}

void close_page() {
  g_reopen.store(false);
  Page *page = g_page.exchange(nullptr);
  if (page == nullptr) return;
  if (g_path[0] != '\0') unlink(g_path);
  if (!g_in_request.load()) munmap(page, live::kPageBytes);
}

void poll() {
  if (g_reopen.exchange(false) && g_config.control.load()) open_page();
  Page *page = g_page.load(std::memory_order_acquire);
  if (page == nullptr || page->request_state.load(std::memory_order_acquire) != live::kPosted)
    return;
  uint32_t posted = live::kPosted;
  if (!page->request_state.compare_exchange_strong(posted, live::kTaken)) return;
  // Not on the stack (the event's thread may have a small one); poll runs in one thread
  // at a time (observe.cc).
  static char request[sizeof(Page::request)];
  memcpy(request, page->request, sizeof(request));
  request[sizeof(request) - 1] = '\0';
  static char errors[sizeof(Page::reply)];
  g_in_request.store(true);
  const int bad = try_apply_config(request, "allocscope ctl", errors, sizeof(errors));
  g_in_request.store(false);
  if (bad < 0) {  // the configuration lock is busy: at the next event
    page->request_state.store(live::kPosted, std::memory_order_release);
    return;
  }
  memcpy(page->reply, errors, sizeof(errors));
  page->request_bad.store(bad, std::memory_order_relaxed);
  page->request_state.store(live::kDone, std::memory_order_release);
  // control:false closed the page meanwhile: the answer is in it (the command still has
  // it mapped); now it goes.
  if (g_page.load() != page) {
    munmap(page, live::kPageBytes);
    return;
  }
  g_text_due_ns.store(0, std::memory_order_relaxed);  // show the new settings at once
  refresh(sys::now_ns());
}

void refresh(uint64_t now_ns) {
  Page *page = g_page.load(std::memory_order_acquire);
  if (page == nullptr) return;
  using stats::g_counters;
  using stats::get;
  const budget::Peak peak = budget::peak();
  const uint64_t start = get(g_counters.started_ns);
  unsigned long long failures = 0, passes = 0, waits = 0;
  for (const stats::PolicyCounters &p : g_counters.policy) {
    failures += get(p.failures);
    passes += get(p.reclaim_passes);
    waits += get(p.waits);
  }
  page->limit.store(budget::limit(), std::memory_order_relaxed);
  page->charged.store(budget::charged_estimate(), std::memory_order_relaxed);
  page->peak.store(peak.bytes, std::memory_order_relaxed);
  page->peak_at_ms.store(peak.at_ns > start ? (peak.at_ns - start) / sys::kNsPerMs : 0,
                         std::memory_order_relaxed);
  page->rss.store(sys::resident_bytes(), std::memory_order_relaxed);
  page->failures.store(failures, std::memory_order_relaxed);
  page->reclaim_passes.store(passes, std::memory_order_relaxed);
  page->waits.store(waits, std::memory_order_relaxed);
  page->events.fetch_add(1, std::memory_order_relaxed);
  page->updated_unix_ms.store(unix_ms(), std::memory_order_release);
  if (now_ns < g_text_due_ns.load(std::memory_order_relaxed)) return;
  g_text_due_ns.store(now_ns + kTextEveryNs, std::memory_order_relaxed);
  // Formatted into buffers of our own (not the stack: the event may be on a thread with a
  // small one), then copied under the seqlock, so a reader's retry window is a memcpy,
  // not the formatting. One formatter at a time.
  if (g_formatting.exchange(true, std::memory_order_acquire)) return;
  static char json[sizeof(Page::json)], summary[sizeof(Page::summary)];
  const int j = stats_json(json, sizeof(json));
  const int s = stats_summary(summary, sizeof(summary), 0);
  if (j < 0 || static_cast<size_t>(j) >= sizeof(json)) json[0] = '\0';
  if (s < 0 || static_cast<size_t>(s) >= sizeof(summary)) summary[0] = '\0';
  const uint64_t seq = page->text_seq.load(std::memory_order_relaxed);
  page->text_seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  memcpy(page->json, json, sizeof(json));
  memcpy(page->summary, summary, sizeof(summary));
  page->text_seq.store(seq + 2, std::memory_order_release);
  g_formatting.store(false, std::memory_order_release);
}

}  // namespace live_page
}  // namespace allocscope
