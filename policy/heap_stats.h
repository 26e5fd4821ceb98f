// heap_stats.h: jemalloc's process-wide totals, read in one consistent snapshot.
//
// jemalloc caches its statistics; read_heap_totals() advances its epoch first, so the
// numbers are current as of the call. It takes jemalloc's ctl lock and may allocate
// nothing, so it is safe from an exit handler or a malloc_stats() call, but it is not
// cheap: never call it on an allocation path.
#pragma once

#include <cstddef>
#include <cstdint>

namespace allocscope {

struct HeapTotals {
  size_t allocated = 0;  // bytes in live allocations (usable sizes)
  size_t active = 0;     // bytes in pages holding live allocations
  size_t resident = 0;   // bytes jemalloc has touched and not returned (upper bound)
  size_t mapped = 0;     // bytes jemalloc has mapped and not unmapped
  size_t retained = 0;   // address space kept for reuse after its pages were returned
  size_t metadata = 0;   // jemalloc's own bookkeeping
  size_t dirty = 0;      // freed pages not yet returned to the system (malloc_trim frees them)
  uint64_t nmalloc = 0;  // allocations ever served (small + large, all arenas)
  uint64_t ndalloc = 0;  // deallocations ever served
};

// Fills *out; returns false if jemalloc could not report (then *out is zeroed).
bool read_heap_totals(HeapTotals *out);

// Flushes the calling thread's cache and purges every arena's dirty pages; returns the
// number of dirty bytes there were to purge.
size_t purge_heap();

}  // namespace allocscope
