// sys.h: the operating-system primitives more than one module needs: the page size,
// clocks, sleeping, and reserved (PROT_NONE) address space. Nothing here allocates.
//
// Words: "reserved address space" is PROT_NONE, MAP_NORESERVE mapping: it costs no memory
// and no commit charge, and nothing else can be mapped there (regions and the premapped
// arenas keep their windows this way). Not to be confused with a thread's reserve.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace allocscope {
namespace sys {

// The system's page size (sysconf, read once).
size_t page_size();
// n rounded up to whole pages; SIZE_MAX when that overflows.
size_t page_round(size_t n);

inline constexpr uint64_t kNsPerMs = 1000000;
// CLOCK_MONOTONIC in nanoseconds.
uint64_t now_ns();
// Sleeps for ns nanoseconds, not cut short by signals, and not a cancellation point:
// allocation paths must not act on pthread_cancel (see lifecycle.h).
void sleep_ns(uint64_t ns);

// Makes [at, at + len) reserved address space (MAP_FIXED over whatever was there).
bool reserve_range(void *at, size_t len);
// Backs [at, at + len) with real pages now (MADV_POPULATE_WRITE, or touching every page
// before Linux 5.14), so that using them later needs neither a system call nor a page
// the kernel might not have.
bool populate(void *at, size_t len);

}  // namespace sys
}  // namespace allocscope
