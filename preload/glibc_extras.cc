// glibc_extras.cc: glibc's malloc introspection and tuning calls, answered for the heap
// that really serves the process. Left to glibc, they would describe glibc's own arena,
// which under the preload is idle and empty.
//
//   malloc_trim   flushes this thread's cache and purges every arena's dirty pages;
//                 returns 1 if there were any, as glibc returns 1 when it released memory.
//   mallinfo2     arena = bytes mapped, uordblks = bytes allocated, fordblks = free bytes
//                 in active pages plus dirty pages, keepcost = dirty pages (what
//                 malloc_trim would release). Fields with no jemalloc counterpart are 0.
//   mallinfo      the same, each field clamped to INT_MAX.
//   malloc_stats  glibc's "Total (incl. mmap)" block, on stderr.
//   malloc_info   glibc's XML shape with the same totals; options must be 0.
//   mallopt       glibc's parameters are accepted and have no effect (jemalloc is tuned
//                 with MALLOC_CONF); returns 1 for a known parameter, 0 otherwise.
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>

#include "backend.h"
#include "foreign.h"
#include "heap_stats.h"

using allocscope::HeapTotals;
using allocscope::foreign::active;
using allocscope::foreign::g_process;

AS_EXPORT int malloc_trim(size_t pad) noexcept {
  if (AS_UNLIKELY(active())) return g_process.malloc_trim(pad);
  return allocscope::purge_heap() > 0;
}

AS_EXPORT struct mallinfo2 mallinfo2() noexcept {
  if (AS_UNLIKELY(active())) return g_process.mallinfo2();
  HeapTotals t;
  allocscope::read_heap_totals(&t);
  struct mallinfo2 mi = {};
  mi.arena = t.mapped;
  mi.uordblks = t.allocated;
  mi.fordblks = (t.active - t.allocated) + t.dirty;
  mi.keepcost = t.dirty;
  return mi;
}

AS_EXPORT struct mallinfo mallinfo() noexcept {
  if (AS_UNLIKELY(active())) return g_process.mallinfo();
  const struct mallinfo2 mi2 = mallinfo2();
  auto clamp = [](size_t v) { return v > INT_MAX ? INT_MAX : static_cast<int>(v); };
  struct mallinfo mi = {};
  mi.arena = clamp(mi2.arena);
  mi.uordblks = clamp(mi2.uordblks);
  mi.fordblks = clamp(mi2.fordblks);
  mi.keepcost = clamp(mi2.keepcost);
  return mi;
}

AS_EXPORT void malloc_stats() noexcept {
  if (AS_UNLIKELY(active())) return g_process.malloc_stats();
  HeapTotals t;
  allocscope::read_heap_totals(&t);
  fprintf(stderr,
          "Total (incl. mmap):\n"
          "system bytes     = %10zu\n"
          "in use bytes     = %10zu\n"
          "max mmap regions = %10d\n"
          "max mmap bytes   = %10d\n",
          t.mapped, t.allocated, 0, 0);
}

AS_EXPORT int malloc_info(int options, FILE *fp) noexcept {
  if (AS_UNLIKELY(active())) return g_process.malloc_info(options, fp);
  if (options != 0) {
    errno = EINVAL;
    return -1;
  }
  HeapTotals t;
  allocscope::read_heap_totals(&t);
  fprintf(fp,
          "<malloc version=\"allocscope-1\">\n"
          "<total type=\"rest\" count=\"0\" size=\"%zu\"/>\n"
          "<system type=\"current\" size=\"%zu\"/>\n"
          "<aspace type=\"total\" size=\"%zu\"/>\n"
          "</malloc>\n",
          (t.active - t.allocated) + t.dirty, t.mapped, t.mapped + t.retained);
  return 0;
}

AS_EXPORT int mallopt(int param, int value) noexcept {
  if (AS_UNLIKELY(active())) return g_process.mallopt(param, value);
  switch (param) {
    case M_MXFAST: case M_TRIM_THRESHOLD: case M_TOP_PAD: case M_MMAP_THRESHOLD:
    case M_MMAP_MAX: case M_CHECK_ACTION: case M_PERTURB: case M_ARENA_TEST:
    case M_ARENA_MAX:
      return 1;
    default:
      return 0;
  }
}
