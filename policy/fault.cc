// fault.cc: see fault.h.
#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <atomic>

#include "backtrace.h"
#include "callsite.h"
#include "config.h"
#include "engine.h"
#include "report.h"
#include "thread_state.h"

namespace allocscope {
namespace fault {
namespace {

// ---- Settings (constant-initialised; strings written under config's lock) ----

std::atomic<bool> g_enabled{false};  // some key that selects failures was set
std::atomic<int> g_probability{100};
std::atomic<uint64_t> g_interval{1};
std::atomic<int64_t> g_times{-1};
std::atomic<int64_t> g_space{0};
std::atomic<uint64_t> g_nth{0};  // the process countdown; 0 = off
std::atomic<size_t> g_size_min{0};
std::atomic<size_t> g_size_max{SIZE_MAX};
std::atomic<int> g_depth{8};
std::atomic<bool> g_marked_only{false};
std::atomic<int> g_verbose{0};
std::atomic<uint64_t> g_random{0x9E3779B97F4A7C15ull};

char g_callsite_module[256];
std::atomic<uintptr_t> g_callsite_offset{0};
std::atomic<bool> g_callsite_set{false};
char g_caller[512];  // module prefixes joined by |
char g_reject[512];
char g_log_path[PATH_MAX];
char g_record_path[PATH_MAX];

std::atomic<uint64_t> g_candidates{0};  // passed the filters (for interval)
std::atomic<uint64_t> g_eligible{0};    // eligible allocations seen (the nth counter)
std::atomic<uint64_t> g_injected{0};
std::atomic<int> g_nth_threads{0};  // threads with an armed allocscope_fail_nth

// fault.caller / fault.reject over the first fault.depth frames outside allocscope.
bool stack_allows() {
  if (g_caller[0] == '\0' && g_reject[0] == '\0') return true;
  void *frames[kMaxFrames];
  int depth = g_depth.load(std::memory_order_relaxed);
  const int n = capture_backtrace(frames, depth < kMaxFrames ? depth : kMaxFrames);
  bool caller_seen = g_caller[0] == '\0';
  for (int i = 0; i < n; ++i) {
    CallSite *s = call_site(frames[i]);
    if (s == nullptr) continue;
    const char *module = s->module();
    if (g_reject[0] != '\0' && module_in(module, g_reject)) return false;
    if (!caller_seen && module_in(module, g_caller)) caller_seen = true;
  }
  return caller_seen;
}

bool callsite_allows(CallSite *s) {
  if (!g_callsite_set.load(std::memory_order_relaxed)) return true;
  return s != nullptr && s->offset() == g_callsite_offset.load() &&
         strcmp(s->module(), g_callsite_module) == 0;
}

// splitmix64 over a shared counter: deterministic for a given fault.seed and order.
uint32_t next_percent() {
  uint64_t z = g_random.fetch_add(0x9E3779B97F4A7C15ull, std::memory_order_relaxed);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<uint32_t>((z ^ (z >> 31)) % 100);
}

// Steps 3-4 of the kernel's order, for an allocation that passed the filters and nth.
bool attributes_say_fail(size_t size) {
  const int probability = g_probability.load(std::memory_order_relaxed);
  if (probability == 0) return false;
  if (g_times.load(std::memory_order_relaxed) == 0) return false;
  int64_t space = g_space.load(std::memory_order_relaxed);
  while (space > static_cast<int64_t>(size)) {
    if (g_space.compare_exchange_weak(space, space - static_cast<int64_t>(size))) return false;
  }
  const uint64_t interval = g_interval.load(std::memory_order_relaxed);
  if (interval > 1 && g_candidates.fetch_add(1) % interval != interval - 1) return false;
  if (probability < 100 && static_cast<int>(next_percent()) >= probability) return false;
  int64_t times = g_times.load();
  while (times > 0 && !g_times.compare_exchange_weak(times, times - 1)) {
  }
  return times != 0;
}

bool countdown(std::atomic<uint64_t> &n) {
  uint64_t left = n.load(std::memory_order_relaxed);
  while (left != 0) {
    if (n.compare_exchange_weak(left, left - 1)) return left == 1;
  }
  return false;
}

// One JSON line per injected failure, appended at once (fault.log).
void log_injection(size_t size, const char *function, CallSite *site, uint64_t nth) {
  char path[PATH_MAX];
  if (g_log_path[0] == '\0' || !expand_path(g_log_path, path, sizeof(path))) return;
  char line[4096];
  int n = snprintf(line, sizeof(line),
                   "{\"pid\":%d,\"tid\":%d,\"size\":%zu,\"function\":\"%s\",\"nth\":%llu,",
                   static_cast<int>(getpid()), static_cast<int>(gettid()), size, function,
                   static_cast<unsigned long long>(nth));
  if (site != nullptr)
    n += snprintf(line + n, sizeof(line) - n,
                  "\"callsite\":\"%s+0x%zx\",\"module\":\"%s\",\"offset\":\"0x%zx\",",
                  site->module(), static_cast<size_t>(site->offset()), site->path,
                  static_cast<size_t>(site->offset()));
  n += snprintf(line + n, sizeof(line) - n, "\"backtrace\":[");
  void *frames[kMaxFrames];
  const int count = capture_backtrace(frames, kMaxFrames);
  for (int i = 0; i < count && n < static_cast<int>(sizeof(line)) - 300; ++i) {
    char frame[256];
    format_frame(frames[i], frame, sizeof(frame));
    n += snprintf(line + n, sizeof(line) - n, "%s\"%s\"", i ? "," : "", frame);
  }
  n += snprintf(line + n, sizeof(line) - n, "]}\n");
  const int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return;
  write_all(fd, line, static_cast<size_t>(n));
  close(fd);
}

void announce(size_t size, Flags flags, const char *function, CallSite *site, uint64_t nth) {
  g_injected.fetch_add(1, std::memory_order_relaxed);
  log_injection(size, function, site, nth);
  const int verbose = g_verbose.load(std::memory_order_relaxed);
  if (verbose == 0 || (flags & ALLOCSCOPE_NOWARN)) return;
  char where[2048] = "";
  if (verbose >= 2) {
    void *frames[kMaxFrames];
    format_backtrace(frames, capture_backtrace(frames, kMaxFrames), where, sizeof(where));
  }
  report("fault injected: %s(%zu) at %s+0x%zx (eligible allocation %llu)%s%s", function, size,
         site != nullptr ? site->module() : "?",
         site != nullptr ? static_cast<size_t>(site->offset()) : size_t{0},
         static_cast<unsigned long long>(nth), verbose >= 2 ? "; " : "", where);
}

// Keeps kEngagedFaults true exactly while something can inject or must record.
void update() {
  const bool armed = (g_enabled.load() && g_probability.load() > 0) || g_nth.load() > 0 ||
                     g_record_path[0] != '\0' || g_nth_threads.load() > 0;
  if (armed) change_engaged(kEngagedFaults, 0);
  else change_engaged(0, kEngagedFaults);
}

void reset() {
  g_enabled.store(false);
  g_probability.store(100);
  g_interval.store(1);
  g_times.store(-1);
  g_space.store(0);
  g_nth.store(0);
  g_size_min.store(0);
  g_size_max.store(SIZE_MAX);
  g_depth.store(8);
  g_marked_only.store(false);
  g_verbose.store(0);
  g_callsite_set.store(false);
  g_caller[0] = g_reject[0] = g_log_path[0] = g_record_path[0] = '\0';
  g_candidates.store(0);
}

bool parse_number(std::string_view v, uint64_t max, uint64_t *out) {
  if (v.empty() || v.size() > 20) return false;
  uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9' || __builtin_mul_overflow(n, 10, &n) ||
        __builtin_add_overflow(n, static_cast<uint64_t>(c - '0'), &n))
      return false;
  }
  if (n > max) return false;
  *out = n;
  return true;
}

template <size_t N>
bool set_text(char (&dest)[N], std::string_view v) {
  if (v.size() >= N) return false;
  memcpy(dest, v.data(), v.size());
  dest[v.size()] = '\0';
  return true;
}

// "module+0xoffset", or "off"
bool set_callsite(std::string_view v) {
  if (v == "off") return g_callsite_set.store(false), true;
  const size_t plus = v.rfind("+0x");
  if (plus == std::string_view::npos || plus == 0 || plus + 3 >= v.size()) return false;
  uintptr_t offset = 0;
  for (char c : v.substr(plus + 3)) {
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (digit < 0 || offset > (UINTPTR_MAX >> 4)) return false;
    offset = offset << 4 | static_cast<uintptr_t>(digit);
  }
  if (!set_text(g_callsite_module, v.substr(0, plus))) return false;
  g_callsite_offset.store(offset);
  g_callsite_set.store(true);
  return true;
}

struct Key {
  const char *name;
  const char *accepts;
  bool (*apply)(std::string_view value);
  bool selects;  // setting it switches injection on
};

const Key kKeys[] = {
    {"probability", "a percentage from 0 to 100",
     [](std::string_view v) {
       uint64_t n;
       return parse_number(v, 100, &n) && (g_probability.store(static_cast<int>(n)), true);
     },
     true},
    // interval, times and space shape the failures that probability, callsite or caller
    // select; alone they switch nothing on (fault.nth:5,fault.times:1 fails just the 5th).
    {"interval", "a number from 1",
     [](std::string_view v) {
       uint64_t n;
       return parse_number(v, UINT64_MAX, &n) && n >= 1 && (g_interval.store(n), true);
     },
     false},
    {"times", "a number of failures, or -1 for no limit",
     [](std::string_view v) {
       uint64_t n;
       if (v == "-1") return g_times.store(-1), true;
       return parse_number(v, INT64_MAX, &n) && (g_times.store(static_cast<int64_t>(n)), true);
     },
     false},
    {"space", "a number of bytes",
     [](std::string_view v) {
       size_t n;
       return parse_size(v, &n) && n <= INT64_MAX &&
              (g_space.store(static_cast<int64_t>(n)), true);
     },
     false},
    // Like fail-nth, nth stands apart from the attributes: it alone switches nothing else on.
    {"nth", "a number from 1 (the n-th eligible allocation of the process fails)",
     [](std::string_view v) {
       uint64_t n;
       return parse_number(v, UINT64_MAX, &n) && n >= 1 && (g_nth.store(n), true);
     },
     false},
    {"size_min", "a size",
     [](std::string_view v) {
       size_t n;
       return parse_size(v, &n) && (g_size_min.store(n), true);
     },
     false},
    {"size_max", "a size",
     [](std::string_view v) {
       size_t n;
       return parse_size(v, &n) && (g_size_max.store(n), true);
     },
     false},
    {"caller", "module name prefixes joined by |",
     [](std::string_view v) { return set_text(g_caller, v); }, true},
    {"reject", "module name prefixes joined by |",
     [](std::string_view v) { return set_text(g_reject, v); }, false},
    {"depth", "a number of frames from 1 to 32",
     [](std::string_view v) {
       uint64_t n;
       return parse_number(v, kMaxFrames, &n) && n >= 1 &&
              (g_depth.store(static_cast<int>(n)), true);
     },
     false},
    {"callsite", "MODULE+0xOFFSET, as fault.log and fault.record print call sites, or off",
     set_callsite, true},
    {"threads", "all or marked",
     [](std::string_view v) {
       if (v == "all") return g_marked_only.store(false), true;
       if (v == "marked") return g_marked_only.store(true), true;
       return false;
     },
     false},
    {"seed", "a number",
     [](std::string_view v) {
       uint64_t n;
       return parse_number(v, UINT64_MAX, &n) && (g_random.store(n), true);
     },
     false},
    {"verbose", "0, 1 (a line per failure) or 2 (with a backtrace)",
     [](std::string_view v) {
       uint64_t n;
       return parse_number(v, 2, &n) && (g_verbose.store(static_cast<int>(n)), true);
     },
     false},
    {"log", "a file path (%p = pid)",
     [](std::string_view v) { return !v.empty() && set_text(g_log_path, v); }, false},
    {"record", "a file path (%p = pid)",
     [](std::string_view v) { return !v.empty() && set_text(g_record_path, v); }, false},
    {"reset", "true: every fault key back to its default, injection off",
     [](std::string_view v) {
       bool on;
       if (!parse_bool(v, &on) || !on) return false;
       reset();
       return true;
     },
     false},
};

// Keys are case-insensitive, as every other key.
const Key *find(std::string_view name) {
  for (const Key &k : kKeys)
    if (name.size() == strlen(k.name) && strncasecmp(name.data(), k.name, name.size()) == 0)
      return &k;
  return nullptr;
}

}  // namespace

const char *key_names() {
  return "fault.probability, fault.interval, fault.times, fault.space, fault.nth, "
         "fault.size_min, fault.size_max, fault.caller, fault.reject, fault.depth, "
         "fault.callsite, fault.threads, fault.seed, fault.verbose, fault.log, fault.record, "
         "fault.reset";
}

const char *accepted(std::string_view key) {
  const Key *k = find(key);
  return k != nullptr ? k->accepts : "";
}

bool configure(std::string_view key, std::string_view value) {
  const Key *k = find(key);
  if (k == nullptr || !k->apply(value)) return false;
  if (k->selects) g_enabled.store(true);
  update();
  return true;
}

bool inject(size_t size, Flags flags, bool nofail, const char *function, const void *callsite) {
  ThreadState &t = t_state;
  // 1. Eligibility.
  if (nofail || (flags & ALLOCSCOPE_NOFAULT)) return false;
  if (g_marked_only.load(std::memory_order_relaxed) && !t.fault_marked) return false;
  if (size < g_size_min.load(std::memory_order_relaxed) ||
      size > g_size_max.load(std::memory_order_relaxed))
    return false;
  CallSite *site = call_site(callsite);
  if (!callsite_allows(site) || !stack_allows()) return false;
  // The number of this eligible allocation: fault.nth counts them; otherwise it is only
  // worth a shared counter when it is logged or reported.
  const bool numbered = g_log_path[0] != '\0' || g_verbose.load(std::memory_order_relaxed) != 0;
  const uint64_t nth = numbered ? g_eligible.fetch_add(1, std::memory_order_relaxed) + 1 : 0;
  if (site != nullptr && g_record_path[0] != '\0')
    site->count.fetch_add(1, std::memory_order_relaxed);
  // 2. nth: the thread's countdown, then the process's.
  bool fail = false;
  if (t.fail_nth != 0) {
    if (--t.fail_nth == 0) {
      fail = true;
      g_nth_threads.fetch_sub(1);
      update();
    }
  }
  if (!fail && countdown(g_nth)) {
    fail = true;
    update();
  }
  // 3-4. The attributes.
  if (!fail && (!g_enabled.load(std::memory_order_relaxed) || !attributes_say_fail(size)))
    return false;
  announce(size, flags, function, site, nth);
  return true;
}

int set_fail_nth(unsigned n) {
  ThreadState &t = t_state;
  if (t.fail_nth == 0 && n != 0) g_nth_threads.fetch_add(1);
  if (t.fail_nth != 0 && n == 0) g_nth_threads.fetch_sub(1);
  t.fail_nth = n;
  update();
  return 0;
}

unsigned fail_nth_left() { return t_state.fail_nth; }

int mark_thread(bool on) {
  const bool was = t_state.fault_marked;
  t_state.fault_marked = on;
  return was;
}

uint64_t injected() { return g_injected.load(std::memory_order_relaxed); }

void write_record() {
  if (g_record_path[0] == '\0') return;
  const int fd = open_output_file(g_record_path);
  if (fd < 0) {
    report("fault.record: cannot open '%s': %s", g_record_path, strerror(-fd));
    return;
  }
  for_each_call_site([fd](CallSite &s) {
    const uint64_t count = s.count.load();
    if (count == 0) return;
    char line[1024];
    const int n = snprintf(line, sizeof(line),
                           "{\"callsite\":\"%s+0x%zx\",\"module\":\"%s\",\"offset\":\"0x%zx\","
                           "\"count\":%llu}\n",
                           s.module(), static_cast<size_t>(s.offset()), s.path,
                           static_cast<size_t>(s.offset()), static_cast<unsigned long long>(count));
    if (n > 0 && static_cast<size_t>(n) < sizeof(line)) write_all(fd, line, static_cast<size_t>(n));
  });
  close(fd);
}

}  // namespace fault
}  // namespace allocscope
