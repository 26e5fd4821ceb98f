// region.h: mmap regions, the vmalloc of the kv fallback.
//
// Every region lives in one window of address space reserved up front (PROT_NONE,
// MAP_NORESERVE: no memory, no commit charge), so "is p a region?" is a range test on two
// globals, cheap enough for every free(). The window is reserved on first use and kept
// for the life of the process; it is never left with a hole another mmap could fill.
//
// A region is page-granular: its data pages are mapped read-write, followed by one
// PROT_NONE guard page (unless set_guard(false)), so a write past the end faults. Its
// memory is fresh anonymous pages, hence zero. Releasing it returns the pages to the
// system at once. Growing never copies: the pages themselves are moved with mremap,
// in place when the address space after the region is free, else to another place in
// the window. Per-region bookkeeping lives in a side table, not in or next to the pages.
//
// Thread-safe; nothing here calls malloc. Operations on one region must not race with
// each other (the same rule as free and realloc).
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "thread_state.h"

namespace allocscope {
namespace region {

// The window: [base, base + size), size 0 until it is reserved. Written once, size last.
extern std::atomic<uintptr_t> g_window_base AS_HIDDEN;
extern std::atomic<uintptr_t> g_window_size AS_HIDDEN;

// Could p be a region? True for every byte of every region; false for nullptr and for
// anything outside the window (everything, while there is none). Free address space
// inside the window also counts: release() and usable_size() tell regions apart.
// Acquire on the size pairs with its release store, so a size never comes with the
// stale base 0; on x86 both are plain loads.
inline bool contains(const void *p) {
  const uintptr_t size = g_window_size.load(std::memory_order_acquire);
  return reinterpret_cast<uintptr_t>(p) - g_window_base.load(std::memory_order_relaxed) < size;
}

// Size of the window to reserve (default 64 GiB), rounded up to pages; regions get all
// of it but a page at each end. Only before the first allocation: false once the window
// exists (or for less than three pages).
bool set_window_size(size_t bytes);
// Guard page after each region allocated from now on (default on).
void set_guard(bool on);

// A region of at least `size` bytes (0 counts as 1) whose start is aligned to `align`
// (0 or a power of two; never less than a page). Its memory is zero. `zero_unused`: the
// caller wants zeroed memory (calloc, ALLOCSCOPE_ZERO) also across resizes, so shrinking
// clears the bytes past the new size that stay mapped; growing needs nothing, as new
// pages are zero. Failure: nullptr and errno ENOMEM (no room in the window; as many
// regions live as a quarter of vm.max_map_count, at most 65536; mmap failed) or EINVAL
// (bad alignment).
void *allocate(size_t size, size_t align, bool zero_unused);

// The region's data length (a page multiple); 0 if p is not the start of a region.
size_t usable_size(const void *p);

// Returns the region's pages to the system and its address space to the window.
// False, doing nothing, if p is not the start of a region. errno is preserved.
bool release(void *p);

// Is p in the window's free address space (no region there: one freed before, or never
// made)? For telling a double free from a pointer into a region.
bool in_free_space(const void *p);

// Resizes to at least `new_size` bytes (0 counts as 1) without copying, keeping the
// alignment and the guard. Shrinking unmaps the tail (keeps it if the kernel refuses, at
// vm.max_map_count) and never fails. Growing stays in
// place when the address space after the region is free, else moves to a new place in
// the window. Returns the (possibly new) start, or nullptr with errno ENOMEM (no room,
// or the kernel refused; before Linux 5.7, which lacks MREMAP_DONTUNMAP, every growth)
// leaving the region as it was, or EINVAL if p is not a region.
void *grow(void *p, size_t new_size);

struct Stats {
  size_t regions;           // live regions
  size_t bytes;             // their data bytes (the sum of usable sizes)
  uint64_t moved;           // growths that moved a region to other addresses
  uint64_t grown_in_place;  // growths that kept its address
};
// Lock-free: each counter is exact, the four together a snapshot only when no region
// operation runs meanwhile.
Stats stats();

// Fork: the parent holds the lock across fork(), so the child sees no half-done operation.
void prefork();
void postfork_parent();
void postfork_child();

}  // namespace region
}  // namespace allocscope
