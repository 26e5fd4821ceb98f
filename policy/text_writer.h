// text_writer.h: appends formatted text to a caller's buffer with snprintf semantics: it
// keeps counting past the end, so the total says how much room the whole text needs.
//
// Allocates nothing and takes no lock: glibc's vsnprintf into a string, for the integer
// and %s conversions the stats use, neither allocates nor locks (the string stream has no
// lock, and no conversion here consults the locale), so the exit-signal handler
// (exit_stats.h) formats with it too.
#pragma once

#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>

namespace allocscope {

struct TextWriter {
  char *buf;
  size_t len;
  size_t used = 0;
  bool failed = false;

  void add(const char *fmt, ...) __attribute__((format(printf, 2, 3))) {
    va_list ap;
    va_start(ap, fmt);
    const size_t room = used < len ? len - used : 0;
    int n = vsnprintf(room ? buf + used : nullptr, room, fmt, ap);
    va_end(ap);
    if (n < 0) failed = true;
    else used += static_cast<size_t>(n);
  }
};

}  // namespace allocscope
