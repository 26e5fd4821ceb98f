// fault.cc: see fault.h.
#include "fault.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <atomic>

#include "backtrace.h"
#include "callsite.h"
#include "counters.h"
#include "fault_events.h"
#include "leak_track.h"
#include "gate.h"
#include "options.h"
#include "record_format.h"
#include "report.h"
#include "stack_id.h"
#include "thread_state.h"

namespace allocscope {
namespace fault {
namespace {

FaultSettings &g_settings = g_fault_settings;
// fault.log as published for injections on any thread, also in fork children (its text
// in g_settings is written under the configuration lock).
PublishedPath g_log;

// State (settings are in options.h): the random sequence, and counts of candidates,
// eligible allocations and the threads with an armed allocscope_fail_nth.
std::atomic<uint64_t> g_random{FaultSettings{}.seed.load()};
std::atomic<uint64_t> g_candidates{0};  // passed the filters (for interval)
std::atomic<uint64_t> g_eligible{0};    // eligible allocations seen (the nth counter)
std::atomic<int> g_nth_threads{0};      // threads with an armed allocscope_fail_nth
std::atomic<int> g_checks{0};           // failure checks running (check.h)
// fault.persistent: a failure was injected, so every later eligible allocation fails.
std::atomic<bool> g_persisting{false};

// The last injection, for the crash record (fault_events.h). Written by the injecting thread;
// a crash record read while another thread injects may mix two (it says "last" anyway).
LastInjection g_last;

// The allocation's first fault.depth frames outside allocscope and their hash
// (stack_id.h), captured once per inject() and only when a key needs them.
struct Stack {
  void *frames[kMaxFrames];
  int n = 0;
  uint64_t hash = 0;  // 0: not captured
};

// Does anything need the stack of every eligible allocation? (fault.log and fault.events
// need it only for an injected one: announce() captures it then.)
bool stack_needed() {
  return g_settings.caller[0] != '\0' || g_settings.reject[0] != '\0' ||
         g_settings.only[0] != '\0' || g_settings.stack_set.load() ||
         g_settings.record[0] != '\0';
}

void capture(Stack &stack) {
  const int depth = g_settings.depth.load();
  stack.n = capture_backtrace(stack.frames, depth < kMaxFrames ? depth : kMaxFrames);
  stack.hash = stack_id::hash(stack.frames, stack.n);
}

// fault.caller / fault.only (some frame in one of the modules) and fault.reject (no
// frame in one) over the stack.
bool stack_allows(const Stack &stack) {
  const char *caller = g_settings.caller, *reject = g_settings.reject, *only = g_settings.only;
  if (caller[0] == '\0' && reject[0] == '\0' && only[0] == '\0') return true;
  bool caller_seen = caller[0] == '\0', only_seen = only[0] == '\0';
  for (int i = 0; i < stack.n; ++i) {
    CallSite *s = call_site(stack.frames[i]);
    if (s == nullptr) continue;
    const char *module = s->module();
    if (reject[0] != '\0' && module_in(module, reject)) return false;
    if (!caller_seen && module_in(module, caller)) caller_seen = true;
    if (!only_seen && module_in(module, only)) only_seen = true;
  }
  return caller_seen && only_seen;
}

bool callsite_allows(CallSite *s) {
  if (!g_settings.callsite_set.load()) return true;
  return s != nullptr && s->offset() == g_settings.callsite_offset.load() &&
         strcmp(s->module(), g_settings.callsite_module) == 0;
}

// splitmix64 over a shared counter: deterministic for a given fault.seed and order.
uint64_t next_random() {
  uint64_t z = g_random.fetch_add(0x9E3779B97F4A7C15ull, std::memory_order_relaxed);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Steps 3-4 of the kernel's order, for an allocation that passed the filters and nth.
bool attributes_say_fail(size_t size) {
  const uint64_t probability = g_settings.probability.load();
  if (probability == 0) return false;
  std::atomic<int64_t> &times = g_settings.times.atomic();
  if (times.load(std::memory_order_relaxed) == 0) return false;
  std::atomic<int64_t> &space = g_settings.space.atomic();
  int64_t left = space.load(std::memory_order_relaxed);
  while (left > static_cast<int64_t>(size)) {
    if (space.compare_exchange_weak(left, left - static_cast<int64_t>(size))) return false;
  }
  const uint64_t interval = g_settings.interval.load();
  if (interval > 1 && g_candidates.fetch_add(1) % interval != interval - 1) return false;
  // UINT64_MAX is 100 %: always.
  if (probability != UINT64_MAX && next_random() >= probability) return false;
  int64_t n = times.load();
  while (n > 0 && !times.compare_exchange_weak(n, n - 1)) {
  }
  return n != 0;
}

bool countdown(std::atomic<uint64_t> &n) {
  uint64_t left = n.load(std::memory_order_relaxed);
  while (left != 0) {
    if (n.compare_exchange_weak(left, left - 1)) return left == 1;
  }
  return false;
}

void remember(size_t size, const char *function, CallSite *site, uint64_t nth,
              const Stack &stack) {
  g_last.size = size;
  g_last.function = function;
  g_last.nth = nth;
  g_last.stack = stack.hash;
  g_last.tid = static_cast<int>(gettid());
  g_last.callsite[0] = '\0';
  if (site != nullptr && site->known()) site->name(g_last.callsite, sizeof(g_last.callsite));
  g_last.count.fetch_add(1, std::memory_order_release);
  leak_track::start();  // the failed path begins: its blocks are tracked until exit
}

// One JSON line per injected failure, appended at once (fault.log; record_format.h).
void log_injection(size_t size, const char *function, CallSite *site, uint64_t nth,
                   const Stack &stack) {
  char path[PATH_MAX];
  if (!g_log.get(path, sizeof(path))) return;
  char line[4096];
  int n = snprintf(line, sizeof(line),
                   "{\"v\":%d,\"pid\":%d,\"tid\":%d,\"size\":%zu,\"function\":\"%s\","
                   "\"nth\":%llu,",
                   record_format::kRecordVersion, static_cast<int>(getpid()),
                   static_cast<int>(gettid()), size, function,
                   static_cast<unsigned long long>(nth));
  char name[PATH_MAX];
  if (site != nullptr && site->known())
    n += snprintf(line + n, sizeof(line) - n,
                  "\"callsite\":\"%s\",\"module\":\"%s\",\"offset\":\"0x%zx\",",
                  site->name(name, sizeof(name)), site->path(),
                  static_cast<size_t>(site->offset()));
  if (stack.hash != 0) {
    char hash[17];
    stack_id::format_hash(stack.hash, hash);
    n += snprintf(line + n, sizeof(line) - n, "\"stack\":\"%s\",\"depth\":%d,", hash, stack.n);
  }
  if (g_persisting.load(std::memory_order_relaxed))
    n += snprintf(line + n, sizeof(line) - n, "\"persistent\":true,");
  n += snprintf(line + n, sizeof(line) - n, "\"backtrace\":[");
  void *frames[kMaxFrames];
  const int count = capture_backtrace(frames, kMaxFrames);
  for (int i = 0; i < count && n < static_cast<int>(sizeof(line)) - 300; ++i) {
    char frame[256];
    format_call_site(frames[i], frame, sizeof(frame));
    n += snprintf(line + n, sizeof(line) - n, "%s\"%s\"", i ? "," : "", frame);
  }
  n += snprintf(line + n, sizeof(line) - n, "]}\n");
  const iovec part = {line, n < static_cast<int>(sizeof(line)) ? static_cast<size_t>(n)
                                                               : sizeof(line) - 1};
  const char *why = nullptr;
  static std::atomic<bool> refusal_said{false};  // one line, not one per injection
  if (!append_line(path, &part, 1, &why) && why != nullptr && !refusal_said.exchange(true)) {
    char expanded[PATH_MAX];
    if (!expand_path(path, expanded, sizeof(expanded))) snprintf(expanded, sizeof(expanded), "%s", path);
    report("fault.log: cannot write '%s': %s", expanded, why);
  }
}

void announce(size_t size, Flags flags, const char *function, CallSite *site, uint64_t nth,
              Stack &stack) {
  stats::bump(stats::g_counters.faults_injected);
  if (stack.hash == 0 && (!g_log.empty() || g_settings.events[0] != '\0')) capture(stack);
  remember(size, function, site, nth, stack);
  log_injection(size, function, site, nth, stack);
  const int verbose = g_settings.verbose.load();
  if (verbose == 0 || (flags & ALLOCSCOPE_NOWARN)) return;
  char where[2048] = "";
  if (verbose >= 2) {
    void *frames[kMaxFrames];
    format_backtrace(frames, capture_backtrace(frames, kMaxFrames), where, sizeof(where));
  }
  char name[PATH_MAX];
  report("fault injected: %s(%zu) at %s (eligible allocation %llu)%s%s", function, size,
         site != nullptr ? site->name(name, sizeof(name)) : "?",
         static_cast<unsigned long long>(nth), verbose >= 2 ? "; " : "", where);
}

// Keeps gate::kFaults set exactly while something can inject or must record.
void update() {
  const bool armed = (g_settings.enabled.load() && g_settings.probability.load() > 0) ||
                     g_settings.nth.load() > 0 || g_settings.record[0] != '\0' ||
                     g_nth_threads.load() > 0 || g_checks.load() > 0 ||
                     g_persisting.load(std::memory_order_relaxed);
  if (armed) gate::change(gate::kFaults, 0);
  else gate::change(0, gate::kFaults);
}

// A failure check attached to the thread counts this eligible allocation: is it one the
// check fails?
bool check_says_fail(ThreadState &t, size_t size, const char *function) {
  CheckedThread *c = attached_check(t);
  if (c == nullptr) return false;
  const uint64_t n = ++c->eligible;
  if (c->fail_at == 0 || n < c->fail_at || (n > c->fail_at && !c->persistent)) return false;
  if (c->failed++ == 0 && c->on_first_failure != nullptr) c->on_first_failure(*c, size, function);
  return true;
}

}  // namespace

void attach_check(ThreadState &t, CheckedThread *c) {
  if (c != nullptr) t.fault.check_generation = c->generation.load(std::memory_order_relaxed);
  t.fault.check = c;
}

void count_checks(int delta) {
  g_checks.fetch_add(delta);
  update();
}

void settings_changed(Key key) {
  if (key == Key::kFaultSeed || key == Key::kFaultReset) g_random.store(g_settings.seed.load());
  if (key == Key::kFaultReset) g_candidates.store(0), g_persisting.store(false);
  if (key == Key::kFaultEvents || key == Key::kFaultReset) fault_events::settings_changed();
  if ((key == Key::kFaultEvents || key == Key::kFaultTrackAll) && g_settings.track_all.load())
    leak_track::start();
  if (key == Key::kFaultLog || key == Key::kFaultReset) g_log.set(g_settings.log);
  update();
}

bool inject(size_t size, Flags flags, bool nofail, const char *function, const void *callsite) {
  ThreadState &t = t_state;
  // 1. Eligibility.
  if (nofail || (flags & ALLOCSCOPE_NOFAULT)) return false;
  if (g_settings.marked_only.load() && !t.fault.marked) return false;
  if (size < g_settings.size_min.load() || size > g_settings.size_max.load()) return false;
  CallSite *site = call_site(callsite);
  // fault.callsite before the stack is captured: with fault.stack it is that stack's first
  // frame (the sweep passes both), so only allocations from that call site pay for
  // unwinding. The same answer as testing it after the stack filters, below.
  const bool persisting = g_persisting.load(std::memory_order_relaxed);
  if (!persisting && !callsite_allows(site)) return false;
  Stack stack;
  if (stack_needed()) capture(stack);
  if (!stack_allows(stack)) return false;
  // fault.persistent after the first failure: every eligible allocation, whatever the
  // selectors (fault.callsite, fault.stack) would say.
  if (persisting) {
    const uint64_t nth = g_eligible.fetch_add(1, std::memory_order_relaxed) + 1;
    announce(size, flags, function, site, nth, stack);
    return true;
  }
  if (g_settings.stack_set.load() && stack.hash != g_settings.stack.load()) return false;
  // The number of this eligible allocation: fault.nth counts them; otherwise it is only
  // worth a shared counter when it is logged or reported.
  const bool numbered = !g_log.empty() || g_settings.verbose.load() != 0;
  const uint64_t nth = numbered ? g_eligible.fetch_add(1, std::memory_order_relaxed) + 1 : 0;
  if (g_settings.record[0] != '\0') {
    if (site != nullptr) site->count.fetch_add(1, std::memory_order_relaxed);
    if (stack.hash != 0) stack_id::count(stack.hash, stack.frames, stack.n);
  }
  // 2. nth: a check running on the thread, the thread's countdown, then the process's.
  bool fail = check_says_fail(t, size, function);
  if (t.fault.fail_nth != 0) {
    if (--t.fault.fail_nth == 0) {
      fail = true;
      g_nth_threads.fetch_sub(1);
      update();
    }
  }
  if (!fail && countdown(g_settings.nth.atomic())) {
    fail = true;
    update();
  }
  // 3-4. The attributes.
  if (!fail && (!g_settings.enabled.load() || !attributes_say_fail(size)))
    return false;
  announce(size, flags, function, site, nth, stack);
  if (g_settings.persistent.load()) {  // after announce: the first line is not "persistent"
    g_persisting.store(true, std::memory_order_relaxed);
    update();  // stays armed although the nth countdown ran out
  }
  return true;
}

const LastInjection &last_injection() { return g_last; }

int set_fail_nth(unsigned n) {
  ThreadState &t = t_state;
  if (t.fault.fail_nth == 0 && n != 0) g_nth_threads.fetch_add(1);
  if (t.fault.fail_nth != 0 && n == 0) g_nth_threads.fetch_sub(1);
  t.fault.fail_nth = n;
  update();
  return 0;
}

unsigned fail_nth_left() { return t_state.fault.fail_nth; }

int mark_thread(bool on) {
  const bool was = t_state.fault.marked;
  t_state.fault.marked = on;
  return was;
}

// fault.record (record_format.h).
void write_record() {
  if (g_settings.record[0] == '\0') return;
  const int fd = open_output_reported("fault.record", g_settings.record, Output::kWhole);
  if (fd < 0) return;
  for_each_counted_site([fd](const CallSite &s, uint64_t count) {
    char line[2 * PATH_MAX + 128], name[PATH_MAX];
    const int n = snprintf(line, sizeof(line),
                           "{\"v\":%d,\"kind\":\"site\",\"callsite\":\"%s\",\"module\":\"%s\","
                           "\"offset\":\"0x%zx\",\"count\":%llu}\n",
                           record_format::kRecordVersion, s.name(name, sizeof(name)), s.path(),
                           static_cast<size_t>(s.offset()), static_cast<unsigned long long>(count));
    if (n > 0 && static_cast<size_t>(n) < sizeof(line)) write_all(fd, line, static_cast<size_t>(n));
  });
  stack_id::for_each([fd](uint64_t hash, void *const *frames, int count, uint64_t times) {
    char line[16384], text[17];
    stack_id::format_hash(hash, text);
    int n = snprintf(line, sizeof(line), "{\"v\":%d,\"kind\":\"stack\",\"stack\":\"%s\",\"count\":%llu,\"frames\":[",
                     record_format::kRecordVersion, text, static_cast<unsigned long long>(times));
    for (int i = 0; i < count && n < static_cast<int>(sizeof(line)) - 400; ++i) {
      char frame[320];
      format_call_site(frames[i], frame, sizeof(frame));
      n += snprintf(line + n, sizeof(line) - n, "%s\"%s\"", i ? "," : "", frame);
    }
    n += snprintf(line + n, sizeof(line) - n, "]}\n");
    if (n > 0 && static_cast<size_t>(n) < sizeof(line)) write_all(fd, line, static_cast<size_t>(n));
  });
  if (const uint64_t dropped = stack_id::g_stacks_dropped.load()) {
    char line[128];
    const int n = snprintf(line, sizeof(line), "{\"v\":%d,\"kind\":\"stacks_dropped\",\"count\":%llu}\n",
                           record_format::kRecordVersion, static_cast<unsigned long long>(dropped));
    write_all(fd, line, static_cast<size_t>(n));
  }
  close(fd);
}

}  // namespace fault
}  // namespace allocscope
