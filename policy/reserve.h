// reserve.h: per-thread reserves (allocscope_reserve), radix_tree_preload for user space.
//
// allocscope_reserve(n) charges n bytes to the budget and makes sure that n bytes of
// memory mapped and populated in advance exist, before the hard section starts. Then an
// allocation with RESERVE (scope or call site) on that thread:
//   - takes its usable size from the thread's reserve (a compare and a subtract in TLS:
//     the budget already holds those bytes, so the limit cannot refuse it);
//   - is an ordinary jemalloc allocation, thread cache and all, so it costs about what a
//     plain one does;
//   - and only if jemalloc cannot get memory from the system (mmap refused: RLIMIT_AS,
//     vm.max_map_count, commit limit) comes from the reserves' premapped arena
//     (premapped_arena.h), which has the unused part of every reserve available, plus
//     the arena's worst-case slack (a slab per size class, a metadata block).
// So until n bytes are used it fails neither for the budget nor for the system. Blocks are
// ordinary: free() from any thread. Frees do not refill the reserve (a preload is used up).
// When the reserve cannot cover an allocation it is exhausted: reported once (the caller
// sized it wrong), counted, and that allocation and the later ones follow the thread's
// normal policy. Allocations served by a reserve are never fault-injected: they cannot fail.
//
// Each reserve's high-water mark (bytes used when it was released) is in the stats.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "backend.h"
#include "options.h"
#include "thread_state.h"

namespace allocscope {
namespace reserve {

// allocscope_reserve(n) is, under the thread's policy (engine.cc): provide(n), then
// budget::charge_reserve(n), then grant(n); unprovide(n) if the charge fails.
//
// provide() makes the premapped memory for all live reserves and this one available (maps
// and populates it): false if the system refused. room() is the most a reserve can add
// now (the premapped window is finite).
bool provide(size_t bytes);
void unprovide(size_t bytes);
size_t room();
// Why the last provide() failed, for the report (snprintf semantics).
int describe_failure(char *buf, size_t len);
// Records `bytes` more reserved by thread t, charged and provided.
void grant(ThreadState &t, size_t bytes);

// A RESERVE allocation: served from t's reserve, or nullptr if t has none or it cannot
// cover this one (exhausted: reported once per reserve). `jemalloc_flags`: alignment, zero.
void *take(ThreadState &t, size_t size, int jemalloc_flags, const char *name);

// take()'s fast path, for a small plain malloc or operator new: if the reserve covers the
// most that `size` can round up to (jemalloc's size classes are 16 bytes apart up to 128,
// then 4 per doubling: at most 16 or size/4 above the request), allocate from jemalloc and
// take what it counted (thread.allocated moves by the usable size). nullptr: use take().
inline void *take_fast(ThreadState &t, size_t size) {
  constexpr size_t kFastMax = 4096;  // well inside jemalloc's small classes
  if (size > kFastMax || static_cast<int64_t>(size + size / 4 + 16) > t.reserve.left ||
      size > g_config.max_size.load(std::memory_order_relaxed))
    return nullptr;
  const uint64_t before = *t.budget.allocated;  // set: a thread with a reserve joined the budget
  void *p = je_malloc(size);
  if (AS_LIKELY(p != nullptr))
    __atomic_store_n(&t.reserve.left, t.reserve.left - static_cast<int64_t>(*t.budget.allocated - before),
                     __ATOMIC_RELAXED);
  return p;
}

// allocscope_reserve_release(): gives the unused part back to the budget and returns it.
// Also at thread exit.
size_t release(ThreadState &t);

struct Stats {
  uint64_t made, released, exhausted, from_premapped;
  uint64_t unused_bytes;      // the unused part of all live reserves
  uint64_t max_high_water;    // the most any released reserve used
  uint64_t last_size[8], last_high_water[8];  // the last released reserves, newest first
  unsigned last_count;
  size_t mapped, available;   // the premapped arena
};
Stats stats();

// Fork: the premapped arena's lock is held across fork().
void prefork();
void postfork_parent();
void postfork_child();

}  // namespace reserve
}  // namespace allocscope
