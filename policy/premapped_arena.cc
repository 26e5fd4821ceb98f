// premapped_arena.cc: see premapped_arena.h.
//
// What jemalloc asks of the hooks, and what it gets:
//   alloc    pages from the window's available part, bumped from `next`; an aligned
//            request skips pages (counted as wasted); new_addr (growing an extent in
//            place) only if it is exactly `next`. Fresh pages: zeroed and committed.
//   dalloc   declined (true): jemalloc keeps the extent as "retained" and reuses it.
//   destroy  nothing: the arena is never destroyed.
//   commit   success: the pages are always committed. decommit, purge: not supported.
//   split, merge: allowed, the window being one range of address space.
// With decay off (dirty_decay_ms, muzzy_decay_ms: -1) jemalloc never even asks to purge.
#include "premapped_arena.h"

#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>

#include "gate.h"
#include "sys.h"

namespace allocscope {

namespace {

// Offsets in the window are counted in 4 KiB units (x86-64's page; the window's
// bookkeeping packs them in 32 bits). sys::page_size() must be that.
constexpr uint64_t kPage = 4096;
constexpr uint64_t kWindow = uint64_t{1} << 30;
constexpr uint64_t kWindowPages = kWindow / kPage;
// What the arena uses on creation: its first base block (2 MiB, 2 MiB-aligned, which the
// window's start is) and the first slab.
constexpr uint64_t kCreationBytes = (2 << 20) + (64 << 10);
// provide() maps at least this much at a time.
constexpr uint64_t kMapStep = 64 << 10;

uint64_t pages_for(size_t bytes) {
  return bytes >= kWindow ? kWindowPages + 1 : (bytes + kPage - 1) / kPage;
}

}  // namespace

void *PremappedArena::hook_alloc(extent_hooks_t *hooks, void *new_addr, size_t size,
                                 size_t alignment, bool *zero, bool *commit, unsigned) {
  void *p = reinterpret_cast<PremappedArena *>(hooks)->take(new_addr, size, alignment);
  if (p == nullptr) return nullptr;
  *zero = true;  // never handed out before: as the kernel gave it
  *commit = true;
  return p;
}

void *PremappedArena::take(void *new_addr, size_t size, size_t alignment) {
  const uintptr_t base = base_.load(std::memory_order_acquire);
  if (base == 0 || size == 0 || size % kPage != 0 || alignment > kWindow) return nullptr;
  const uint64_t pages = size / kPage;
  const uint64_t align_pages = alignment <= kPage ? 1 : alignment / kPage;
  uint64_t state = state_.load(std::memory_order_acquire);
  for (;;) {
    const uint64_t next = next_of(state), end = end_of(state);
    const uint64_t start = (next + align_pages - 1) & ~(align_pages - 1);
    if (new_addr != nullptr && reinterpret_cast<uintptr_t>(new_addr) != base + start * kPage)
      return nullptr;
    if (start + pages > end) {
      if (low_water_bit_ != 0) gate::change(low_water_bit_, 0);
      return nullptr;
    }
    if (state_.compare_exchange_weak(state, pack(start + pages, end), std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      if (start != next) wasted_.fetch_add((start - next) * kPage, std::memory_order_relaxed);
      if (low_water_bit_ != 0 && (end - start - pages) * kPage < low_water())
        gate::change(low_water_bit_, 0);
      return reinterpret_cast<void *>(base + start * kPage);
    }
  }
}

// Appends `bytes` (rounded up to pages) to the available part. Under mutex_.
bool PremappedArena::map_locked(size_t bytes) {
  const uintptr_t base = base_.load(std::memory_order_relaxed);
  const uint64_t end = end_of(state_.load(std::memory_order_acquire));
  const uint64_t pages = pages_for(bytes);
  if (base == 0 || broken_ || pages > kWindowPages - end) return false;
  void *at = reinterpret_cast<void *>(base + end * kPage);
  const size_t len = pages * kPage;
  if (mmap(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
          MAP_FAILED ||
      !sys::populate(at, len)) {
    // A failed MAP_FIXED may have unmapped the range: reserve it again, or never map
    // there again (another mapping may be there now).
    if (!sys::reserve_range(at, len)) broken_ = true;
    return false;
  }
  // Only this function and trim() move `end`, both under mutex_; hooks move `next`.
  uint64_t state = state_.load(std::memory_order_acquire);
  while (!state_.compare_exchange_weak(state, pack(next_of(state), end + pages),
                                       std::memory_order_acq_rel, std::memory_order_acquire)) {
  }
  return true;
}

// Reserves the window and creates the jemalloc arena. Under mutex_.
bool PremappedArena::create_locked() {
  // Twice the size, then the unaligned ends go: a 1 GiB-aligned 1 GiB.
  void *raw = mmap(nullptr, 2 * kWindow, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) return false;
  const uintptr_t start = (reinterpret_cast<uintptr_t>(raw) + kWindow - 1) & ~(kWindow - 1);
  const uintptr_t raw_end = reinterpret_cast<uintptr_t>(raw) + 2 * kWindow;
  if (start != reinterpret_cast<uintptr_t>(raw))
    munmap(raw, start - reinterpret_cast<uintptr_t>(raw));
  if (raw_end != start + kWindow)
    munmap(reinterpret_cast<void *>(start + kWindow), raw_end - start - kWindow);
  base_.store(start, std::memory_order_release);
  if (!map_locked(kCreationBytes)) return false;

  extent_hooks_t *hooks = &hooks_;
  unsigned index;
  size_t len = sizeof(index);
  if (je_mallctl("arenas.create", &index, &len, &hooks, sizeof(hooks)) != 0) return false;
  char name[64];
  const ssize_t never = -1;
  snprintf(name, sizeof(name), "arena.%u.dirty_decay_ms", index);
  je_mallctl(name, nullptr, nullptr, const_cast<ssize_t *>(&never), sizeof(never));
  snprintf(name, sizeof(name), "arena.%u.muzzy_decay_ms", index);
  je_mallctl(name, nullptr, nullptr, const_cast<ssize_t *>(&never), sizeof(never));
  // The first allocation registers the window's pages in jemalloc's radix tree, which
  // maps the leaf for all of it now rather than when mmap may be refused.
  if (void *p = je_mallocx(1, MALLOCX_ARENA(index) | MALLOCX_TCACHE_NONE))
    je_dallocx(p, MALLOCX_TCACHE_NONE);
  arena_.store(index, std::memory_order_release);
  return true;
}

bool PremappedArena::provide(size_t bytes) {
  MutexLock lock(mutex_);
  bool ok = arena() != 0 || (base_.load() == 0 && create_locked());
  if (ok) {
    const uint64_t state = state_.load(std::memory_order_acquire);
    const uint64_t available = (end_of(state) - next_of(state)) * kPage;
    if (available < bytes) {
      const uint64_t missing = bytes - available;
      ok = map_locked(missing < kMapStep ? kMapStep : missing);
    }
  }
  return ok;
}

void PremappedArena::trim(size_t (*keep_bytes)()) {
  MutexLock lock(mutex_);
  const uintptr_t base = base_.load(std::memory_order_relaxed);
  const size_t keep = keep_bytes();
  uint64_t state = state_.load(std::memory_order_acquire), new_end;
  do {
    new_end = next_of(state) + pages_for(keep < kMapStep ? kMapStep : keep);
    if (base == 0 || new_end >= end_of(state)) return;
  } while (!state_.compare_exchange_weak(state, pack(next_of(state), new_end),
                                         std::memory_order_acq_rel, std::memory_order_acquire));
  // No hook hands out pages past new_end any more: give them back.
  if (!sys::reserve_range(reinterpret_cast<void *>(base + new_end * kPage),
                     (end_of(state) - new_end) * kPage))
    broken_ = true;
}

size_t PremappedArena::room() const {
  if (broken_) return 0;
  if (base_.load() == 0) return kWindow - kCreationBytes;
  return (kWindowPages - next_of(state_.load(std::memory_order_acquire))) * kPage;
}

PremappedArena::Stats PremappedArena::stats() const {
  const uint64_t state = state_.load(std::memory_order_acquire);
  return Stats{end_of(state) * kPage, next_of(state) * kPage,
               (end_of(state) - next_of(state)) * kPage, wasted_.load()};
}

}  // namespace allocscope
