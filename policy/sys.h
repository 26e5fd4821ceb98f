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

// The largest single request the kernel would back: what its overcommit heuristic
// (vm.overcommit_memory 0, and 2 in effect) refuses above, RAM + swap, and RLIMIT_AS;
// SIZE_MAX when vm.overcommit_memory is 1 (the kernel refuses nothing). jemalloc maps
// with MAP_NORESERVE, which bypasses the heuristic: without this cap a 64 TiB malloc
// succeeds and runs into the OOM killer where glibc's fails.
size_t largest_backable_size();

// Resident memory now (/proc/self/statm) and its peak (getrusage's ru_maxrss), in bytes;
// 0 if unreadable. System calls only: async-signal-safe.
size_t resident_bytes();
size_t peak_resident_bytes();

// Has thread `tid` of process `pid` ended (tgkill says ESRCH)?
bool thread_is_gone(int pid, int tid);

// Defers pthread_cancel for its lifetime, around the waits of an allocation: malloc is not
// a cancellation point (POSIX), so a cancel that arrives while an allocation waits stays
// pending until the thread's next cancellation point outside it. Acted on inside, it
// would unwind through noexcept entry points (std::terminate) or leave the engine's
// bookkeeping half done.
class CancelDeferral {
 public:
  CancelDeferral();
  ~CancelDeferral();
  CancelDeferral(const CancelDeferral &) = delete;
  CancelDeferral &operator=(const CancelDeferral &) = delete;

 private:
  int previous_;
};

// Makes [at, at + len) reserved address space (MAP_FIXED over whatever was there).
bool reserve_range(void *at, size_t len);
// Backs [at, at + len) with real pages now (MADV_POPULATE_WRITE, or touching every page
// before Linux 5.14), so that using them later needs neither a system call nor a page
// the kernel might not have.
bool populate(void *at, size_t len);

}  // namespace sys
}  // namespace allocscope
