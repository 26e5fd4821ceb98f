// config.cc: see config.h. Each key is one row of kKeys: its name, what it accepts
// (quoted in the error line) and the function that applies a value.
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

#include <mutex>
#include <string>

#include "report.h"

namespace allocscope {

Config g_config;

namespace {

std::mutex g_config_mutex;

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

const Key kKeys[] = {
    {"stats_print", "true or false",
     [](std::string_view v) { return parse_bool(v, &g_config.stats_print); }},
    {"stats_file", "a file path (%p = pid)",
     [](std::string_view v) { return !v.empty() && set_path(v, g_config.stats_file); }},
    {"log_file", "a file path (%p = pid) that can be opened for appending",
     [](std::string_view v) {
       if (v.empty() || !set_path(v, g_config.log_file)) return false;
       return set_report_file(g_config.log_file) == 0;
     }},
    {"strict", "true or false",
     [](std::string_view v) { return parse_bool(v, &g_config.strict); }},
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
  return names;
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
  std::lock_guard<std::mutex> lock(g_config_mutex);
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
    if (colon == std::string_view::npos) {
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
  if (bad != 0 && g_config.strict) {
    report("%s: strict:true, so bad configuration is fatal", source);
    abort();
  }
  return bad;
}

}  // namespace allocscope
