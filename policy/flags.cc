// flags.cc: see flags.h.
#include "flags.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

namespace allocscope {
namespace {

struct Name {
  Flags flag;
  const char *word;
};

const Name kNames[] = {
    {ALLOCSCOPE_NOFAIL, "nofail"},         {ALLOCSCOPE_NOWAIT, "nowait"},
    {ALLOCSCOPE_NORETRY, "noretry"},       {ALLOCSCOPE_RETRY_MAYFAIL, "retry_mayfail"},
    {ALLOCSCOPE_NOWARN, "nowarn"},         {ALLOCSCOPE_KV, "kv"},
    {ALLOCSCOPE_NORECLAIM, "noreclaim"},   {ALLOCSCOPE_MEMALLOC, "memalloc"},
    {ALLOCSCOPE_NOMEMALLOC, "nomemalloc"}, {ALLOCSCOPE_RESERVE, "reserve"},
    {ALLOCSCOPE_NOFAULT, "nofault"},       {ALLOCSCOPE_ZERO, "zero"},
};

}  // namespace

const char *format_flags(Flags flags, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  auto append = [&](const char *word, int klass) {
    int n = klass < 0 ? snprintf(buf + used, len - used, "%s%s", used ? "|" : "", word)
                      : snprintf(buf + used, len - used, "%s%s(%d)", used ? "|" : "", word,
                                 klass);
    if (n > 0) used = used + static_cast<size_t>(n) < len ? used + static_cast<size_t>(n) : len - 1;
  };
  for (const Name &n : kNames)
    if (flags & n.flag) append(n.word, -1);
  for (int c = 0; c < 16; ++c)
    if (flags & ALLOCSCOPE_NORECLAIM_CLASS(c)) append("noreclaim_class", c);
  if (used == 0) snprintf(buf, len, "none");
  return buf;
}

bool parse_flags(const char *text, size_t len, Flags *out) {
  Flags flags = 0;
  size_t pos = 0;
  while (pos <= len) {
    size_t end = pos;
    while (end < len && text[end] != '|') ++end;
    const char *word = text + pos;
    size_t n = end - pos;
    while (n > 0 && (*word == ' ' || *word == '\t')) ++word, --n;
    while (n > 0 && (word[n - 1] == ' ' || word[n - 1] == '\t')) --n;
    bool known = false;
    if ((n == 6 && strncasecmp(word, "normal", 6) == 0) ||
        (n == 4 && strncasecmp(word, "none", 4) == 0)) {
      known = true;
    }
    for (const Name &name : kNames) {
      if (!known && strlen(name.word) == n && strncasecmp(word, name.word, n) == 0) {
        flags |= name.flag;
        known = true;
      }
    }
    // noreclaim_class(C), C in 0..15
    static const char kClass[] = "noreclaim_class(";
    const size_t prefix = sizeof(kClass) - 1;
    if (!known && n > prefix + 1 && strncasecmp(word, kClass, prefix) == 0 &&
        word[n - 1] == ')') {
      unsigned c = 0;
      size_t digits = n - prefix - 1;
      bool ok = digits >= 1 && digits <= 2;
      for (size_t i = 0; ok && i < digits; ++i) {
        char d = word[prefix + i];
        ok = d >= '0' && d <= '9';
        c = c * 10 + static_cast<unsigned>(d - '0');
      }
      if (ok && c < 16) {
        flags |= ALLOCSCOPE_NORECLAIM_CLASS(c);
        known = true;
      }
    }
    if (!known) return false;
    pos = end + 1;
  }
  *out = flags;
  return true;
}

}  // namespace allocscope
