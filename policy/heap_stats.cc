// heap_stats.cc: see heap_stats.h.
#include "heap_stats.h"

#include <stdio.h>

#include "backend.h"
#include "sys.h"

namespace allocscope {
namespace {

template <typename T>
bool read_ctl(const char *name, T *value) {
  size_t len = sizeof(T);
  return je_mallctl(name, value, &len, nullptr, 0) == 0;
}

// One statistic of all arenas merged (MALLCTL_ARENAS_ALL = 4096); 0 if unavailable.
template <typename T>
T read_merged(const char *field) {
  char name[96];
  snprintf(name, sizeof(name), "stats.arenas.4096.%s", field);
  T value = 0;
  read_ctl(name, &value);
  return value;
}

}  // namespace

bool read_heap_totals(HeapTotals *out) {
  *out = HeapTotals{};
  uint64_t epoch = 1;
  size_t len = sizeof(epoch);
  if (je_mallctl("epoch", &epoch, &len, &epoch, len) != 0) return false;
  bool ok = read_ctl("stats.allocated", &out->allocated) &&
            read_ctl("stats.active", &out->active) &&
            read_ctl("stats.resident", &out->resident) &&
            read_ctl("stats.mapped", &out->mapped) &&
            read_ctl("stats.retained", &out->retained) &&
            read_ctl("stats.metadata", &out->metadata);
  if (!ok) {
    *out = HeapTotals{};
    return false;
  }
  out->dirty = read_merged<size_t>("pdirty") * sys::page_size();
  out->nmalloc = read_merged<uint64_t>("small.nmalloc") + read_merged<uint64_t>("large.nmalloc");
  out->ndalloc = read_merged<uint64_t>("small.ndalloc") + read_merged<uint64_t>("large.ndalloc");
  return true;
}

size_t purge_heap() {
  je_mallctl("thread.tcache.flush", nullptr, nullptr, nullptr, 0);
  HeapTotals before;
  read_heap_totals(&before);
  je_mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
  return before.dirty;
}

}  // namespace allocscope
