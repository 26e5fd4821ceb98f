// backtrace.cc: see backtrace.h.
#include "backtrace.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unwind.h>

#include "callsite.h"

namespace allocscope {
namespace {

struct Walk {
  void **frames;
  int max;
  const void *own_base;  // load address of the object allocscope is linked into
  bool inside;           // still in allocscope's own frames
  int count;
};

_Unwind_Reason_Code on_frame(struct _Unwind_Context *context, void *arg) {
  auto *walk = static_cast<Walk *>(arg);
  const uintptr_t ip = _Unwind_GetIP(context);
  if (ip == 0) return _URC_END_OF_STACK;
  if (walk->inside) {
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(ip - 1), &info) != 0 && info.dli_fbase == walk->own_base)
      return _URC_NO_REASON;
    walk->inside = false;
  }
  walk->frames[walk->count++] = reinterpret_cast<void *>(ip);
  return walk->count == walk->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

}  // namespace

int capture_backtrace(void **frames, int max) {
  Dl_info self;
  const void *own_base = dladdr(reinterpret_cast<void *>(&capture_backtrace), &self) != 0
                             ? self.dli_fbase
                             : nullptr;
  Walk walk{frames, max, own_base, true, 0};
  _Unwind_Backtrace(on_frame, &walk);
  return walk.count;
}

const char *format_backtrace(void *const *frames, int n, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < n && used + 1 < len; ++i) {
    char frame[256];
    format_call_site(frames[i], frame, sizeof(frame));
    int w = snprintf(buf + used, len - used, "%s%s", i == 0 ? "" : " <- ", frame);
    if (w < 0) break;
    used += static_cast<size_t>(w);
  }
  return buf;
}

}  // namespace allocscope
