// options.cc: see options.h. kKeys is the one list of configuration keys: its rows give
// each key's name, what it accepts (quoted in error lines) and its parser.
#include "options.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

namespace allocscope {

Config g_config;
FaultSettings g_fault_settings;
Mutex g_config_mutex{LockRank::kConfig};

namespace options {
void prefork() { g_config_mutex.lock(); }
void postfork_parent() { g_config_mutex.unlock(); }
void postfork_child() { g_config_mutex.unlock(); }
}  // namespace options

namespace {

bool equals_ignore_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view strip(std::string_view s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// A plain decimal number (no size suffix) from 0 to `max`.
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

// ---- Parsers, one per kind of value ----

bool size_value(std::string_view v, Setting *s) {
  size_t n;
  return parse_size(v, &n) && (s->number = n, true);
}
bool size_from_4k(std::string_view v, Setting *s) { return size_value(v, s) && s->number >= 4096; }
bool size_from_1_to_ptrdiff_max(std::string_view v, Setting *s) {
  return size_value(v, s) && s->number >= 1 && s->number <= static_cast<uint64_t>(PTRDIFF_MAX);
}
bool size_to_512m(std::string_view v, Setting *s) {
  return size_value(v, s) && s->number <= (uint64_t{512} << 20);
}
// The regions' window: at least three pages, at most 64 TiB (half of x86-64's user address
// space: a larger reservation can never be made, and would fail only at the first region).
bool window_size(std::string_view v, Setting *s) {
  return size_value(v, s) && s->number >= 3 * 4096 && s->number <= (uint64_t{64} << 40);
}
bool size_to_int64_max(std::string_view v, Setting *s) {
  return size_value(v, s) && s->number <= static_cast<uint64_t>(INT64_MAX);
}
bool bool_value(std::string_view v, Setting *s) { return parse_bool(v, &s->on); }

// stats_print: a boolean (true = json), json or summary; the StatsPrint in `number`, and
// `on` whether it prints anything.
bool stats_print_value(std::string_view v, Setting *s) {
  bool on;
  if (parse_bool(v, &on)) s->number = static_cast<uint64_t>(on ? StatsPrint::kJson : StatsPrint::kOff);
  else if (equals_ignore_case(v, "json")) s->number = static_cast<uint64_t>(StatsPrint::kJson);
  else if (equals_ignore_case(v, "summary")) s->number = static_cast<uint64_t>(StatsPrint::kSummary);
  else return false;
  s->on = s->number != static_cast<uint64_t>(StatsPrint::kOff);
  return true;
}

// limit: a size, or cgroup[-HEADROOM] (the cgroup's limit less a headroom: a size, or 5 %).
bool limit_value(std::string_view v, Setting *s) {
  if (v.size() >= 6 && equals_ignore_case(v.substr(0, 6), "cgroup")) {
    s->on = true;
    if (v.size() == 6) return s->number = UINT64_MAX, true;
    size_t headroom;
    if (v[6] != '-' || !parse_size(v.substr(7), &headroom)) return false;
    s->number = headroom;
    return true;
  }
  return size_value(v, s);
}

bool limit_scope(std::string_view v, Setting *s) {
  if (equals_ignore_case(v, "process")) return s->on = false, true;
  if (equals_ignore_case(v, "tree")) return s->on = true, true;
  return false;
}
bool true_only(std::string_view v, Setting *s) { return parse_bool(v, &s->on) && s->on; }
bool profile_value(std::string_view v, Setting *) { return equals_ignore_case(v, "dump"); }

template <uint64_t kMin, uint64_t kMax>
bool count(std::string_view v, Setting *s) {
  return parse_number(v, kMax, &s->number) && s->number >= kMin;
}

bool text_value(std::string_view v, Setting *) { return !v.empty() && v.size() < PATH_MAX; }

bool policy_value(std::string_view v, Setting *s) {
  // RESERVE draws on a thread's own reserve and NOFAULT marks a section: neither is a
  // process default. ZERO is call-site only.
  const Flags unsupported = ALLOCSCOPE_RESERVE | ALLOCSCOPE_NOFAULT | ALLOCSCOPE_ZERO;
  return parse_flags(v.data(), v.size(), &s->flags) && !(s->flags & unsupported);
}

bool conflict_action(std::string_view v, Setting *s) {
  if (equals_ignore_case(v, "wait")) s->action = ConflictAction::kWait;
  else if (equals_ignore_case(v, "fail")) s->action = ConflictAction::kFail;
  else if (equals_ignore_case(v, "abort")) s->action = ConflictAction::kAbort;
  else return false;
  return true;
}

bool rules_value(std::string_view v, Setting *) {
  RuleText rules[kMaxRules];
  int n;
  return parse_rules(v, rules, &n);
}

// fault.probability: a percentage with up to 18 decimals ("0.001"), or "1/N": one
// candidate in N. Stored as the chance in 2^-64 units, so that 1/1000000 and 0.0001 mean
// what they say and no candidate is ever failed by rounding a non-zero chance to zero.
bool probability(std::string_view v, Setting *s) {
  using u128 = unsigned __int128;
  const u128 one = u128{1} << 64;
  u128 chance;
  if (v.size() > 2 && v.substr(0, 2) == "1/") {
    uint64_t n;
    if (!parse_number(v.substr(2), UINT64_MAX, &n) || n == 0) return false;
    chance = one / n;
  } else {
    const size_t dot = v.find('.');
    const std::string_view whole = v.substr(0, dot);
    const std::string_view frac = dot == std::string_view::npos ? "" : v.substr(dot + 1);
    uint64_t w, f = 0, scale = 1;
    if (!parse_number(whole, 100, &w) || frac.size() > 18 ||
        (dot != std::string_view::npos && (frac.empty() || !parse_number(frac, UINT64_MAX, &f))))
      return false;
    for (size_t i = 0; i < frac.size(); ++i) scale *= 10;
    const u128 numerator = u128{w} * scale + f;  // the percentage times `scale`
    if (numerator > u128{100} * scale) return false;
    chance = numerator * one / (u128{100} * scale);
    if (chance == 0 && numerator != 0) chance = 1;
  }
  s->number = chance >= one ? UINT64_MAX : static_cast<uint64_t>(chance);
  return true;
}

bool fault_times(std::string_view v, Setting *s) {
  if (v == "-1") return s->signed_number = -1, true;
  uint64_t n;
  return parse_number(v, INT64_MAX, &n) && (s->signed_number = static_cast<int64_t>(n), true);
}

bool fault_callsite(std::string_view v, Setting *s) {
  if (equals_ignore_case(v, "off")) return s->module = {}, true;
  return parse_callsite(v, &s->module, &s->offset) &&
         s->module.size() < sizeof(FaultSettings::callsite_module);
}

bool module_list(std::string_view v, Setting *) {
  return v.size() < sizeof(FaultSettings::caller);
}

// fault.stack: a stack hash as fault.log and fault.record print it (16 hex digits; a
// "0x" is allowed), or off.
bool fault_stack(std::string_view v, Setting *s) {
  if (equals_ignore_case(v, "off")) return s->on = false, true;
  if (v.size() > 2 && (v.substr(0, 2) == "0x" || v.substr(0, 2) == "0X")) v.remove_prefix(2);
  if (v.empty() || v.size() > 16) return false;
  uint64_t n = 0;
  for (const char c : v) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return false;
    n = n << 4 | static_cast<uint64_t>(d);
  }
  s->number = n;
  s->on = true;
  return true;
}

bool fault_threads(std::string_view v, Setting *s) {
  if (equals_ignore_case(v, "all")) return s->on = false, true;
  if (equals_ignore_case(v, "marked")) return s->on = true, true;
  return false;
}

struct KeySpec {
  Key key;
  const char *name;
  const char *accepts;
  bool (*parse)(std::string_view value, Setting *out);
};

// When you add a key: a row here, a case in control.cc's apply(), and a line in the
// README's configuration table (or its fault injection section).
constexpr KeySpec kKeys[] = {
    {Key::kPolicy, "policy",
     "flags joined by | (normal, nofail, nowait, noretry, retry_mayfail, nowarn, kv, "
     "noreclaim, noreclaim_class(0-15), memalloc, nomemalloc)",
     policy_value},
    {Key::kLimit, "limit",
     "a size (0 = no limit), e.g. 512M, or cgroup[-HEADROOM] (the cgroup's limit less a size, "
     "or less 5 %)",
     limit_value},
    {Key::kLimitScope, "limit_scope",
     "process (each process its own limit) or tree (one limit for the process and its "
     "descendants)",
     limit_scope},
    // For tests: the directory whose limit files limit:cgroup reads, instead of the
    // process's own cgroup (README: "limit:cgroup").
    {Key::kCgroupDir, "cgroup_dir", "a directory with memory.max or memory.limit_in_bytes",
     text_value},
    {Key::kArenaLimit, "arena_limit", "a size (0 = none): the jemalloc arena's share of the budget",
     size_value},
    {Key::kNowaitReserve, "nowait_reserve",
     "a size up to 512M (0 = off): memory mapped in advance for NOWAIT", size_to_512m},
    {Key::kKvThreshold, "kv_threshold", "a size from 4K", size_from_4k},
    {Key::kKvDirect, "kv_direct", "a size (0 = off)", size_value},
    {Key::kKvGuard, "kv_guard", "true or false", bool_value},
    {Key::kKvWindow, "kv_window", "a size from 12K to 65536G, before the first region exists",
     window_size},
    {Key::kEmergency, "emergency", "a size, e.g. 1M", size_value},
    {Key::kMaxSize, "max_size", "a size from 1 to PTRDIFF_MAX", size_from_1_to_ptrdiff_max},
    {Key::kNofailMax, "nofail_max", "a size", size_value},
    {Key::kNofailOverdrawMs, "nofail_overdraw_ms", "milliseconds (0 = never)",
     count<0, UINT64_MAX>},
    {Key::kRetryMax, "retry_max", "a number of reclaim passes from 0 to 1000000",
     count<0, 1000000>},
    {Key::kNofailInNowait, "nofail_in_nowait", "wait, fail or abort", conflict_action},
    {Key::kStallWarnMs, "stall_warn_ms", "milliseconds (0 = never)", count<0, UINT64_MAX>},
    {Key::kRules, "rules",
     "MODULE=FLAGS joined by / (e.g. libsqlite3=nowait|nowarn/libfoo=nofail), or none",
     rules_value},
    {Key::kWarn, "warn", "true or false", bool_value},
    {Key::kWarnBurst, "warn_burst", "reports allowed per 5 seconds from 0 (no limit) to 1000000",
     count<0, 1000000>},
    {Key::kStrict, "strict", "true or false", bool_value},
    {Key::kStatsPrint, "stats_print",
     "summary (a short table), json or true (the JSON), or false", stats_print_value},
    {Key::kStatsFile, "stats_file", "a file path (%p = pid; relative to the current directory)",
     text_value},
    {Key::kLogFile, "log_file",
     "stderr, or a file path (%p = pid; relative to the current directory) to a regular file "
     "of yours that can be opened for appending, with no symbolic link in the path",
     text_value},
    {Key::kControl, "control",
     "true or false: live counters and a request slot in a per-user page that allocscope "
     "top, stats and ctl read",
     bool_value},
    {Key::kTimelineFile, "timeline_file",
     "a file path (%p = pid; relative to the current directory) for the HTML timeline "
     "written at exit",
     text_value},
    {Key::kProfile, "profile",
     "dump (jemalloc's heap profile now, with jemalloc's prof on: allocscope run --profile)",
     profile_value},
    {Key::kFaultProbability, "fault.probability",
     "a percentage from 0 to 100 (decimals allowed, e.g. 0.001), or 1/N for one in N",
     probability},
    // interval, times and space shape the failures that probability, callsite or caller
    // select; alone they switch nothing on (fault.nth:5,fault.times:1 fails just the 5th).
    {Key::kFaultInterval, "fault.interval", "a number from 1", count<1, UINT64_MAX>},
    {Key::kFaultTimes, "fault.times", "a number of failures, or -1 for no limit", fault_times},
    {Key::kFaultSpace, "fault.space", "a number of bytes", size_to_int64_max},
    {Key::kFaultNth, "fault.nth", "a number from 1 (the n-th eligible allocation of the process fails)",
     count<1, UINT64_MAX>},
    {Key::kFaultSizeMin, "fault.size_min", "a size", size_value},
    {Key::kFaultSizeMax, "fault.size_max", "a size", size_value},
    {Key::kFaultCaller, "fault.caller", "module name prefixes joined by |", module_list},
    {Key::kFaultReject, "fault.reject", "module name prefixes joined by |", module_list},
    {Key::kFaultDepth, "fault.depth", "a number of frames from 1 to 32", count<1, 32>},
    {Key::kFaultCallsite, "fault.callsite",
     "MODULE+0xOFFSET, as fault.log and fault.record print call sites, or off", fault_callsite},
    {Key::kFaultThreads, "fault.threads", "all or marked", fault_threads},
    {Key::kFaultSeed, "fault.seed", "a number", count<0, UINT64_MAX>},
    {Key::kFaultVerbose, "fault.verbose", "0, 1 (a line per failure) or 2 (with a backtrace)",
     count<0, 2>},
    {Key::kFaultLog, "fault.log", "a file path (%p = pid; relative to the current directory)",
     text_value},
    {Key::kFaultRecord, "fault.record",
     "a file path (%p = pid; relative to the current directory)", text_value},
    {Key::kFaultReset, "fault.reset", "true: every fault key back to its default, injection off",
     true_only},
    // Only allocations whose first fault.depth frames pass through one of these modules
    // are eligible (counted by fault.nth, recorded, failable); unlike fault.caller it
    // selects no failures itself, so a sweep's baseline is not disturbed.
    {Key::kFaultOnly, "fault.only", "module name prefixes joined by | (eligibility only)",
     module_list},
    // One call stack, as fault.log and fault.record print its hash (stack_id.h): its
    // allocations are the candidates (probability defaults to 100, as fault.callsite).
    {Key::kFaultStack, "fault.stack", "a stack hash (16 hex digits, as fault.record prints it), or off",
     fault_stack},
    // After the first injected failure, every later eligible allocation of the process
    // fails too (SQLite's "persistent" faults), whatever selected the first.
    {Key::kFaultPersistent, "fault.persistent", "true or false", bool_value},
    // Per-process start, exit, crash and thread records (record_format.h); also installs
    // the crash handlers and tracks the bytes allocated after an injection (leaks).
    {Key::kFaultEvents, "fault.events", "a file path (%p = pid; relative to the current directory)",
     text_value},
    // With fault.events: track blocks from start-up, not from the first injection, so the
    // exit line says what a run leaves live anyway (the sweep's baseline, for `leak`).
    {Key::kFaultTrackAll, "fault.track_all", "true or false", bool_value},
};

bool is_fault_key(const KeySpec &k) { return strncmp(k.name, "fault.", 6) == 0; }

const KeySpec *find_key(std::string_view name) {
  for (const KeySpec &key : kKeys)
    if (equals_ignore_case(name, key.name)) return &key;
  return nullptr;
}

// "policy, limit, ..., fault.*" or "fault.probability, ...", built once from kKeys into
// a static buffer (parsing allocates nothing).
const char *key_names(bool fault) {
  static char names[2][1024];
  static std::atomic<bool> built[2];
  char *out = names[fault];
  if (!built[fault].load(std::memory_order_acquire)) {
    size_t used = 0;
    for (const KeySpec &key : kKeys)
      if (is_fault_key(key) == fault)
        used += snprintf(out + used, sizeof(names[0]) - used, "%s%s", used ? ", " : "", key.name);
    if (!fault) snprintf(out + used, sizeof(names[0]) - used, ", fault.*");
    built[fault].store(true, std::memory_order_release);
  }
  return out;
}

// One error line, cut at the buffer's end, with control characters shown as '?' so that
// a value holding a newline stays one line.
void error_line(void (*on_error)(const char *, void *), void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void error_line(void (*on_error)(const char *, void *), void *ctx, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  for (char *c = line; *c != '\0'; ++c)
    if (static_cast<unsigned char>(*c) < 0x20 || *c == 0x7f) *c = '?';
  on_error(line, ctx);
}

}  // namespace

bool parse_bool(std::string_view text, bool *out) {
  static const char *const kTrue[] = {"true", "1", "yes", "on"};
  static const char *const kFalse[] = {"false", "0", "no", "off"};
  for (const char *word : kTrue)
    if (equals_ignore_case(text, word)) return *out = true, true;
  for (const char *word : kFalse)
    if (equals_ignore_case(text, word)) return *out = false, true;
  return false;
}

bool parse_size(std::string_view text, size_t *out) {
  if (text.empty()) return false;
  int shift = 0;
  switch (toupper(static_cast<unsigned char>(text.back()))) {
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
  }
  if (shift != 0) text.remove_suffix(1);
  uint64_t value;
  if (!parse_number(text, UINT64_MAX, &value) || value > (UINT64_MAX >> shift)) return false;
  *out = static_cast<size_t>(value << shift);
  return true;
}

bool parse_rules(std::string_view text, RuleText *out, int *count) {
  *count = 0;
  if (equals_ignore_case(text, "none")) return true;
  for (size_t pos = 0; pos <= text.size();) {
    size_t end = text.find('/', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view rule = text.substr(pos, end - pos);
    const size_t eq = rule.find('=');
    if (eq == 0 || eq == std::string_view::npos || eq >= sizeof(RuleText::module) ||
        *count == kMaxRules)
      return false;
    RuleText &r = out[(*count)++];
    memcpy(r.module, rule.data(), eq);
    r.module[eq] = '\0';
    const std::string_view flags = rule.substr(eq + 1);
    if (!parse_flags(flags.data(), flags.size(), &r.flags) || r.flags == 0 ||
        (r.flags & ALLOCSCOPE_ZERO))
      return false;
    pos = end + 1;
  }
  return true;
}

bool parse_callsite(std::string_view text, std::string_view *module, uintptr_t *offset) {
  const size_t plus = text.rfind("+0x");
  if (plus == std::string_view::npos || plus == 0 || plus + 3 >= text.size()) return false;
  uintptr_t n = 0;
  for (char c : text.substr(plus + 3)) {
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (digit < 0 || n > (UINTPTR_MAX >> 4)) return false;
    n = n << 4 | static_cast<uintptr_t>(digit);
  }
  *module = text.substr(0, plus);
  *offset = n;
  return true;
}

int parse_config(std::string_view text, const char *source,
                 Refusal (*apply)(const Setting &, void *),
                 void (*on_error)(const char *, void *), void *ctx) {
  int bad = 0;
  for (size_t pos = 0; pos <= text.size();) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    const std::string_view pair = strip(text.substr(pos, comma - pos));
    pos = comma + 1;
    if (pair.empty()) continue;
    const size_t colon = pair.find(':');
    const std::string_view name = strip(pair.substr(0, colon));
    const bool fault = name.size() > 6 && equals_ignore_case(name.substr(0, 6), "fault.");
    const KeySpec *key = find_key(name);
    if (colon == std::string_view::npos) {
      error_line(on_error, ctx, "%s: '%.*s' is not key:value (known keys: %s)", source,
                 static_cast<int>(pair.size()), pair.data(), key_names(false));
      ++bad;
      continue;
    }
    if (key == nullptr) {
      error_line(on_error, ctx, "%s: unknown key '%.*s' (%s keys: %s)", source,
                 static_cast<int>(name.size()), name.data(), fault ? "fault" : "known",
                 key_names(fault));
      ++bad;
      continue;
    }
    const std::string_view value = strip(pair.substr(colon + 1));
    Setting setting;
    setting.key = key->key;
    setting.text = value;
    const Refusal refusal = key->parse(value, &setting) ? apply(setting, ctx) : kRefused;
    if (refusal == nullptr) continue;
    if (*refusal == '\0')
      error_line(on_error, ctx, "%s: bad value '%.*s' for key '%s': expected %s", source,
                 static_cast<int>(value.size()), value.data(), key->name, key->accepts);
    else
      error_line(on_error, ctx, "%s: bad value '%.*s' for key '%s': %s", source,
                 static_cast<int>(value.size()), value.data(), key->name, refusal);
    ++bad;
  }
  return bad;
}

int check_config(std::string_view text, const char *source, std::string *errors) {
  return parse_config(
      text, source, [](const Setting &, void *) -> Refusal { return nullptr; },
      [](const char *line, void *out) { static_cast<std::string *>(out)->append(line).append("\n"); },
      errors);
}

}  // namespace allocscope
