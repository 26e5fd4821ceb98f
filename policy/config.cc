// config.cc: see config.h. Each key is one row of kKeys: its name, what it accepts
// (quoted in the error line) and the function that applies a value.
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <string>

#include "atomic_reserve.h"
#include "budget.h"
#include "engine.h"
#include "fault.h"
#include "region.h"
#include "rules.h"
#include "report.h"

namespace allocscope {

Config g_config;

namespace {

pthread_mutex_t g_config_mutex = PTHREAD_MUTEX_INITIALIZER;

bool equals_ignore_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view strip(std::string_view s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool set_path(std::string_view value, char (&dest)[PATH_MAX]) {
  if (value.size() >= PATH_MAX) return false;
  memcpy(dest, value.data(), value.size());
  dest[value.size()] = '\0';
  return true;
}

struct Key {
  const char *name;
  const char *accepts;
  bool (*apply)(std::string_view value);
};

template <std::atomic<bool> Config::*field>
bool set_bool(std::string_view v) {
  bool b;
  if (!parse_bool(v, &b)) return false;
  (g_config.*field).store(b);
  return true;
}

template <std::atomic<size_t> Config::*field>
bool set_size(std::string_view v) {
  size_t n;
  if (!parse_size(v, &n)) return false;
  (g_config.*field).store(n);
  return true;
}

// A plain decimal number (no size suffix) up to `max`.
bool parse_count(std::string_view v, uint64_t max, uint64_t *out) {
  size_t n;
  if (v.empty() || !isdigit(static_cast<unsigned char>(v.back())) || !parse_size(v, &n) ||
      n > max)
    return false;
  *out = n;
  return true;
}

template <typename T, std::atomic<T> Config::*field, uint64_t kMax>
bool set_count(std::string_view v) {
  uint64_t n;
  if (!parse_count(v, kMax, &n)) return false;
  (g_config.*field).store(static_cast<T>(n));
  return true;
}

const Key kKeys[] = {
    {"policy", "flags joined by | (normal, nofail, nowait, noretry, retry_mayfail, nowarn, "
               "kv, noreclaim, noreclaim_class(0-15), memalloc, nomemalloc)",
     [](std::string_view v) {
       Flags f;
       // RESERVE draws on a thread's own reserve and NOFAULT marks a section: neither is
       // a process default. ZERO is call-site only.
       const Flags unsupported = ALLOCSCOPE_RESERVE | ALLOCSCOPE_NOFAULT | ALLOCSCOPE_ZERO;
       if (!parse_flags(v.data(), v.size(), &f) || (f & unsupported)) return false;
       g_config.policy.store(f);
       update_engagement();
       return true;
     }},
    {"limit", "a size (0 = no limit), e.g. 512M",
     [](std::string_view v) {
       size_t n;
       if (!parse_size(v, &n)) return false;
       budget::set_limit(n);
       return true;
     }},
    {"arena_limit", "a size (0 = none): the jemalloc arena's share of the budget",
     [](std::string_view v) {
       size_t n;
       if (!parse_size(v, &n)) return false;
       budget::set_arena_limit(n);
       return true;
     }},
    {"nowait_reserve", "a size up to 512M (0 = off): memory mapped in advance for NOWAIT",
     [](std::string_view v) {
       size_t n;
       if (!parse_size(v, &n) || n > (size_t{512} << 20)) return false;
       if (!atomic_reserve::configure(n))
         report("nowait_reserve:%zu: the system refused to map it; the atomic reserve is off",
                n);
       update_engagement();
       return true;
     }},
    {"kv_threshold", "a size from 4K", [](std::string_view v) {
       size_t n;
       if (!parse_size(v, &n) || n < 4096) return false;
       g_config.kv_threshold.store(n);
       return true;
     }},
    {"kv_direct", "a size (0 = off)", [](std::string_view v) {
       size_t n;
       if (!parse_size(v, &n)) return false;
       g_config.kv_direct.store(n);
       update_engagement();
       return true;
     }},
    {"kv_guard", "true or false", [](std::string_view v) {
       bool on;
       if (!parse_bool(v, &on)) return false;
       region::set_guard(on);
       return true;
     }},
    {"kv_window", "a size, before the first region exists", [](std::string_view v) {
       size_t n;
       return parse_size(v, &n) && region::set_window_size(n);
     }},
    {"emergency", "a size, e.g. 1M",
     [](std::string_view v) {
       size_t n;
       if (!parse_size(v, &n)) return false;
       budget::set_emergency(n);
       return true;
     }},
    {"max_size", "a size from 1 to PTRDIFF_MAX",
     [](std::string_view v) {
       size_t n;
       if (!parse_size(v, &n) || n == 0 || n > static_cast<size_t>(PTRDIFF_MAX)) return false;
       g_config.max_size.store(n);
       return true;
     }},
    {"nofail_max", "a size", set_size<&Config::nofail_max>},
    {"nofail_overdraw_ms", "milliseconds (0 = never)", set_count<uint64_t, &Config::nofail_overdraw_ms, UINT64_MAX>},
    {"retry_max", "a number of reclaim passes from 0 to 1000000",
     set_count<unsigned, &Config::retry_max, 1000000>},
    {"nofail_in_nowait", "wait, fail or abort",
     [](std::string_view v) {
       ConflictAction a;
       if (equals_ignore_case(v, "wait")) a = ConflictAction::kWait;
       else if (equals_ignore_case(v, "fail")) a = ConflictAction::kFail;
       else if (equals_ignore_case(v, "abort")) a = ConflictAction::kAbort;
       else return false;
       g_config.nofail_in_nowait.store(a);
       return true;
     }},
    {"stall_warn_ms", "milliseconds (0 = never)", set_count<uint64_t, &Config::stall_warn_ms, UINT64_MAX>},
    {"rules", "MODULE=FLAGS joined by / (e.g. libsqlite3=nowait|nowarn/libfoo=nofail), or none",
     rules::configure},
    {"warn", "true or false", set_bool<&Config::warn>},
    {"warn_burst", "reports allowed per 5 seconds from 0 (no limit) to 1000000",
     set_count<unsigned, &Config::warn_burst, 1000000>},
    {"strict", "true or false", set_bool<&Config::strict>},
    {"stats_print", "true or false", set_bool<&Config::stats_print>},
    {"stats_file", "a file path (%p = pid)",
     [](std::string_view v) { return !v.empty() && set_path(v, g_config.stats_file); }},
    {"log_file", "a file path (%p = pid) that can be opened for appending",
     [](std::string_view v) {
       if (v.empty() || !set_path(v, g_config.log_file)) return false;
       return set_report_file(g_config.log_file) == 0;
     }},
};

const Key *find_key(std::string_view name) {
  for (const Key &key : kKeys)
    if (equals_ignore_case(name, key.name)) return &key;
  return nullptr;
}

std::string known_keys() {
  std::string names;
  for (const Key &key : kKeys) {
    if (!names.empty()) names += ", ";
    names += key.name;
  }
  return names + ", fault.*";
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
  if (text.empty()) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    if (__builtin_mul_overflow(value, 10, &value) ||
        __builtin_add_overflow(value, static_cast<uint64_t>(c - '0'), &value))
      return false;
  }
  if (value > (UINT64_MAX >> shift)) return false;
  *out = static_cast<size_t>(value << shift);
  return true;
}

int apply_config(std::string_view text, const char *source) {
  pthread_mutex_lock(&g_config_mutex);
  int bad = 0;
  for (size_t pos = 0; pos <= text.size();) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view pair = text.substr(pos, comma - pos);
    pos = comma + 1;
    if (strip(pair).empty()) continue;
    pair = strip(pair);
    const size_t colon = pair.find(':');
    const std::string_view name = strip(pair.substr(0, colon));
    const Key *key = find_key(name);
    const bool fault_key = name.size() > 6 && equals_ignore_case(name.substr(0, 6), "fault.");
    if (fault_key && colon != std::string_view::npos) {
      const std::string_view value = strip(pair.substr(colon + 1));
      const std::string_view sub = name.substr(6);
      if (fault::accepted(sub)[0] == '\0') {
        report("%s: unknown key '%.*s' (fault keys: %s)", source, static_cast<int>(name.size()),
               name.data(), fault::key_names());
        ++bad;
      } else if (!fault::configure(sub, value)) {
        report("%s: bad value '%.*s' for key '%.*s': expected %s", source,
               static_cast<int>(value.size()), value.data(), static_cast<int>(name.size()),
               name.data(), fault::accepted(sub));
        ++bad;
      }
    } else if (colon == std::string_view::npos) {
      report("%s: '%.*s' is not key:value (known keys: %s)", source,
             static_cast<int>(pair.size()), pair.data(), known_keys().c_str());
      ++bad;
    } else if (key == nullptr) {
      report("%s: unknown key '%.*s' (known keys: %s)", source, static_cast<int>(name.size()),
             name.data(), known_keys().c_str());
      ++bad;
    } else {
      const std::string_view value = strip(pair.substr(colon + 1));
      if (!key->apply(value)) {
        report("%s: bad value '%.*s' for key '%s': expected %s", source,
               static_cast<int>(value.size()), value.data(), key->name, key->accepts);
        ++bad;
      }
    }
  }
  pthread_mutex_unlock(&g_config_mutex);
  if (bad != 0 && g_config.strict.load()) {
    report("%s: strict:true, so bad configuration is fatal", source);
    abort();
  }
  return bad;
}

void config_prefork() { pthread_mutex_lock(&g_config_mutex); }
void config_postfork() { pthread_mutex_unlock(&g_config_mutex); }

}  // namespace allocscope
