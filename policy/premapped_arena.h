// premapped_arena.h: a jemalloc arena that only ever uses memory mapped in advance.
//
// The reserves (reserve.h) need allocations that cannot fail for the system's sake: not
// when mmap is refused (a lowered RLIMIT_AS, vm.max_map_count, a full commit limit) and,
// for NOWAIT, not even by making a system call. jemalloc gets its memory through extent
// hooks; a PremappedArena is an explicit jemalloc arena (arenas.create) whose hooks hand
// out only pages that were mapped and populated before, from one window:
//
//   window: one radix-tree leaf's span (1 GiB, 1 GiB-aligned); only its start is mapped
//   [ handed to jemalloc ........ | available (mapped, populated) | not mapped ......... ]
//   base                          next                            end                 base+1G
//
// Only [base, end) is mapped: the window costs address space (RLIMIT_AS) for what was
// provided, not for its span. It grows in place, by mapping at `end` without replacing
// anything (MAP_FIXED_NOREPLACE), and shrinks by unmapping past `end`. Its span is placed
// far below the other mappings (the kernel places mappings top-down, so they reach it
// last; far above them where they are placed bottom-up, as under valgrind), which keeps
// the room after `end` free in practice; when another mapping is there anyway, provide()
// fails and says so.
//
// Why one leaf's span: jemalloc's radix tree (which maps every page it manages to its
// extent) has a leaf per 1 GiB-aligned GiB on x86-64, allocated from jemalloc's own base
// with mmap the first time a page in it is registered. The first allocation made when the
// arena is created creates the window's leaf; every later page the hooks hand out is under
// that same leaf, so no allocation from the arena ever needs jemalloc to map metadata.
//
// The hooks never map, unmap, purge or decommit: handing out is a compare-and-swap that
// moves `next` up (a lock-free bump, so a hook never waits and fork cannot catch it
// holding a lock), and memory handed to jemalloc stays with the arena (the dalloc hook
// declines, decay is off), which reuses it. Only provide() and trim() make system calls,
// and they run on ordinary allocation paths (or, for the atomic reserve, a NOWAIT
// allocation that refills it: atomic_reserve.h), never inside a hook.
//
// jemalloc may ask the hooks for more than the request that made it ask: a bigger extent
// to keep (opt.retain's exponential growth of retained extents), which the hooks refuse
// (jemalloc then asks for the exact size), or a new metadata block (base blocks, 2 MiB-
// aligned and growing with what the arena manages), which has no fallback: without one no
// allocation that needs new metadata can succeed. A refused request (that, or a block
// larger than what is left) is remembered (wanted()), so that the next provide() can make
// room for it.
#pragma once

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "backend.h"
#include "mutex.h"

namespace allocscope {

class PremappedArena {
 public:
  struct Stats {
    size_t mapped;      // bytes mapped and populated, handed out or available
    size_t handed_out;  // to jemalloc (it keeps and reuses them)
    size_t available;   // mapped and not handed out yet
    size_t wasted;      // skipped to align what jemalloc asked for
  };

  // What the last provide() that failed ran into (describe() says it in words).
  enum class Failure : uint8_t { kNone, kPlace, kTaken, kMap, kPopulate, kFull, kArena };

  // `rank`: its lock's place in the lock order (mutex.h). `low_water_bit`: a gate bit
  // (gate.h) set when a hook leaves less than low_water() available or cannot serve a
  // request, so that an ordinary allocation refills it (0 = none).
  constexpr PremappedArena(LockRank rank, uint32_t low_water_bit)
      : hooks_{hook_alloc, hook_dalloc, hook_destroy, hook_commit, nullptr, nullptr,
               nullptr, hook_split, hook_merge},
        low_water_bit_(low_water_bit),
        mutex_(rank) {}

  // Makes at least `bytes` available, creating the arena on first use. Maps and populates
  // the pages (MADV_POPULATE_WRITE): false if the window is full or the system refuses.
  bool provide(size_t bytes);
  // The same for a caller that must not wait: false at once if a provide() or trim() is
  // running on another thread.
  bool try_provide(size_t bytes);
  // Returns available memory beyond keep() bytes to the system. keep() is evaluated under
  // the lock provide() takes, so a provide() that raised what keep() returns is never
  // undone.
  void trim(size_t (*keep)());
  // What provide() may add at most, now.
  size_t room() const;

  // The largest request (with its alignment) the hooks refused since the last provide(),
  // if it is no larger than what the arena has handed out so far, or than `allowed`; else
  // 0. A provide() for at least this much lets jemalloc make the allocation it failed (e.g.
  // a new metadata block, which grows with the arena), while a single huge request does
  // not inflate the arena.
  size_t wanted(size_t allowed = 0) const;

  // The jemalloc arena index, 0 until the arena exists. mallocx flags for it: no thread
  // cache, which would hand its blocks to ordinary allocations and fill from elsewhere;
  // 0 until the arena exists (MALLOCX_ARENA(0) would name jemalloc's first arena).
  unsigned arena() const { return arena_.load(std::memory_order_acquire); }
  int mallocx_flags() const {
    const unsigned index = arena();
    return index != 0 ? MALLOCX_ARENA(index) | MALLOCX_TCACHE_NONE : 0;
  }

  void set_low_water(size_t bytes) { low_water_.store(bytes, std::memory_order_relaxed); }
  size_t low_water() const { return low_water_.load(std::memory_order_relaxed); }
  // A second, lower mark: short() is true from when a hook leaves less than this
  // available, or refuses a request, until a provide() makes it up. Inline and one load:
  // every NOWAIT allocation asks (atomic_reserve.h).
  void set_min_water(size_t bytes) { min_water_.store(bytes, std::memory_order_relaxed); }
  bool short_of_memory() const { return short_.load(std::memory_order_relaxed); }

  Stats stats() const;
  // Mapped and not handed out yet. Inline: every NOWAIT allocation reads it.
  size_t available() const {
    const uint64_t state = state_.load(std::memory_order_acquire);
    return (end_of(state) - next_of(state)) * 4096;
  }

  // What the last failed provide() ran into, in words ("" if none failed): snprintf
  // semantics.
  int describe(char *buf, size_t len) const;
  Failure last_failure() const { return failure_.load(std::memory_order_relaxed); }

  // Fork: provide()/trim()'s lock is held across fork() (a hook never takes it).
  void prefork() ABSL_NO_THREAD_SAFETY_ANALYSIS { mutex_.lock(); }
  void postfork() ABSL_NO_THREAD_SAFETY_ANALYSIS { mutex_.unlock(); }

 private:
  // jemalloc's extent hooks (see the top of premapped_arena.cc). Each gets the
  // extent_hooks_t this object starts with. No decommit and no purge: those are left NULL,
  // which jemalloc takes as "not supported", so the pages stay populated.
  static void *hook_alloc(extent_hooks_t *, void *new_addr, size_t size, size_t alignment,
                          bool *zero, bool *commit, unsigned arena_ind);
  static bool hook_dalloc(extent_hooks_t *, void *, size_t, bool, unsigned) { return true; }
  static void hook_destroy(extent_hooks_t *, void *, size_t, bool, unsigned) {}
  static bool hook_commit(extent_hooks_t *, void *, size_t, size_t, size_t, unsigned) {
    return false;  // always committed: success
  }
  static bool hook_split(extent_hooks_t *, void *, size_t, size_t, size_t, bool, unsigned) {
    return false;  // success
  }
  static bool hook_merge(extent_hooks_t *, void *, size_t, void *, size_t, bool, unsigned) {
    return false;  // success: the window is one range of address space
  }
  bool provide_locked(size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  bool create_locked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  bool place_locked(size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  bool map_locked(size_t bytes) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void fail(Failure why, int error, size_t bytes);
  void *take(void *new_addr, size_t size, size_t alignment);

  // `next` and `end` as page offsets from the window's base, in one word so that the bump
  // and trim() agree on both.
  static uint64_t pack(uint64_t next, uint64_t end) { return next << 32 | end; }
  static uint64_t next_of(uint64_t state) { return state >> 32; }
  static uint64_t end_of(uint64_t state) { return state & 0xffffffffu; }

  extent_hooks_t hooks_{};  // first member: a hook finds its arena from the pointer
  const uint32_t low_water_bit_;
  std::atomic<uintptr_t> base_{0};
  std::atomic<uint64_t> state_{0};
  std::atomic<unsigned> arena_{0};
  std::atomic<size_t> low_water_{0};
  std::atomic<size_t> min_water_{0};
  std::atomic<bool> short_{false};  // see set_min_water()
  std::atomic<size_t> wasted_{0};
  std::atomic<size_t> wanted_{0};  // see wanted(); raised by hooks, cleared by provide()
  // The last failure of provide(): what, the errno, and how many bytes it was mapping.
  std::atomic<Failure> failure_{Failure::kNone};
  std::atomic<int> failure_errno_{0};
  std::atomic<size_t> failure_bytes_{0};
  Mutex mutex_;  // provide() and trim()
};

}  // namespace allocscope
