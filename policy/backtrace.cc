// backtrace.cc: see backtrace.h.
#include "backtrace.h"

#include <dlfcn.h>
#include <link.h>
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
  uintptr_t own_low, own_high;  // the address range of the object allocscope is linked into
  bool inside;                  // still in allocscope's own frames
  int count;
};

// The range of addresses our own object's segments span, found once: a range test per
// frame instead of a dladdr (the loader's lock and a search) per frame, which made a
// stack capture on every allocation (fault.stack, fault.record) cost twice as much.
struct OwnRange {
  uintptr_t low = 0, high = 0;
};
OwnRange find_own_range() {
  OwnRange range;
  dl_iterate_phdr(
      [](dl_phdr_info *info, size_t, void *arg) {
        auto *r = static_cast<OwnRange *>(arg);
        const uintptr_t self = reinterpret_cast<uintptr_t>(&capture_backtrace);
        uintptr_t low = UINTPTR_MAX, high = 0;
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr) &ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD) continue;
          const uintptr_t start = info->dlpi_addr + ph.p_vaddr;
          if (start < low) low = start;
          if (start + ph.p_memsz > high) high = start + ph.p_memsz;
        }
        if (self < low || self >= high) return 0;
        r->low = low;
        r->high = high;
        return 1;
      },
      &range);
  return range;
}

_Unwind_Reason_Code on_frame(struct _Unwind_Context *context, void *arg) {
  auto *walk = static_cast<Walk *>(arg);
  const uintptr_t ip = _Unwind_GetIP(context);
  if (ip == 0) return _URC_END_OF_STACK;
  if (walk->inside) {
    if (ip - 1 >= walk->own_low && ip - 1 < walk->own_high) return _URC_NO_REASON;
    walk->inside = false;
  }
  walk->frames[walk->count++] = reinterpret_cast<void *>(ip);
  return walk->count == walk->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

}  // namespace

int capture_backtrace(void **frames, int max) {
  static const OwnRange own = find_own_range();  // our object is never unloaded
  Walk walk{frames, max, own.low, own.high, true, 0};
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
