// premapped_arena.cc: see premapped_arena.h.
//
// What jemalloc asks of the hooks, and what it gets:
//   alloc    pages from the window's available part, bumped from `next`; an aligned
//            request skips pages (counted as wasted); new_addr (growing an extent in
//            place) only if it is exactly `next`; uncommitted (retained growth): never.
//            Fresh pages: zeroed and committed.
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

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

namespace allocscope {

namespace {

// Offsets in the window are counted in 4 KiB units (x86-64's page; the window's
// bookkeeping packs them in 32 bits). sys::page_size() must be that.
constexpr uint64_t kPage = 4096;
// One radix-tree leaf's span (premapped_arena.h): the window's alignment and its limit.
constexpr uint64_t kWindow = uint64_t{1} << 30;
constexpr uint64_t kWindowPages = kWindow / kPage;
// What the arena uses on creation: its first base block (2 MiB, 2 MiB-aligned, which the
// window's start is) and the first slab.
constexpr uint64_t kCreationBytes = (2 << 20) + (64 << 10);
// provide() maps at least this much at a time.
constexpr uint64_t kMapStep = 64 << 10;
// How far below the kernel's next mapping a window's span is placed first: further than
// anything a process maps at once in practice (kv's 64 GiB window included), so the
// mappings the kernel places top-down later fill the space above it before they reach
// the room the window grows into.
constexpr uint64_t kPlaceBelow = uint64_t{256} << 30;

uint64_t pages_for(size_t bytes) {
  return bytes >= kWindow ? kWindowPages + 1 : (bytes + kPage - 1) / kPage;
}

// Maps `len` bytes read-write at exactly `at`, or nothing: never over another mapping.
// Returns 0 or an errno (EEXIST: something is there).
int map_at(uintptr_t at, size_t len) {
  void *p = mmap(reinterpret_cast<void *>(at), len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == reinterpret_cast<void *>(at)) return 0;
  if (p == MAP_FAILED) return errno;
  munmap(p, len);  // a kernel before 4.17 took the address as a hint and put it elsewhere
  return EEXIST;
}

// errno values provide() meets, by name (strerror may allocate: this runs inside malloc).
const char *errno_text(int error) {
  switch (error) {
    case ENOMEM: return "ENOMEM: RLIMIT_AS, vm.max_map_count or the commit limit";
    case EEXIST: return "EEXIST: the address range is taken";
    case EAGAIN: return "EAGAIN";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case EFAULT: return "EFAULT";
    case EHWPOISON: return "EHWPOISON";
    default: return "an unexpected errno";
  }
}

}  // namespace

void *PremappedArena::hook_alloc(extent_hooks_t *hooks, void *new_addr, size_t size,
                                 size_t alignment, bool *zero, bool *commit, unsigned) {
  // jemalloc asks for an uncommitted extent only to grow its retained memory (opt.retain's
  // exponential series, extent_grow_retained(): 2 MiB, then larger), and asks again for
  // the exact size when that is refused. Refused here: then every page handed out is in
  // use, available() is what the arena can still serve, and a refill of N serves N.
  if (!*commit) return nullptr;
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
      // Remember what it would take from any `next`, for the next provide() (wanted()).
      const size_t footprint = size + (align_pages - 1) * kPage;
      size_t wanted = wanted_.load(std::memory_order_relaxed);
      while (footprint > wanted && !wanted_.compare_exchange_weak(wanted, footprint)) {
      }
      short_.store(true, std::memory_order_relaxed);
      if (low_water_bit_ != 0) gate::change(low_water_bit_, 0);
      return nullptr;
    }
    if (state_.compare_exchange_weak(state, pack(start + pages, end), std::memory_order_acq_rel,
                                     std::memory_order_acquire)) {
      if (start != next) wasted_.fetch_add((start - next) * kPage, std::memory_order_relaxed);
      const size_t left = (end - start - pages) * kPage;
      if (low_water_bit_ != 0 && left < low_water()) gate::change(low_water_bit_, 0);
      if (left < min_water_.load(std::memory_order_relaxed) && !short_of_memory())
        short_.store(true, std::memory_order_relaxed);
      return reinterpret_cast<void *>(base + start * kPage);
    }
  }
}

void PremappedArena::fail(Failure why, int error, size_t bytes) {
  failure_errno_.store(error, std::memory_order_relaxed);
  failure_bytes_.store(bytes, std::memory_order_relaxed);
  failure_.store(why, std::memory_order_relaxed);
}

// Chooses the window's span and maps its first `bytes` there. Under mutex_.
//
// The span must be 1 GiB-aligned (one radix-tree leaf) with free room after its start;
// only `bytes` of it are mapped. Where the kernel would put a new mapping now is the low
// end of the mappings made so far (it places them top-down); the span goes kPlaceBelow
// under that, or, if something is there, one of a few places further down. Where mappings
// are placed bottom-up instead (valgrind's address-space manager, the kernel's legacy
// layout) the probe is low and the span goes as far above it.
bool PremappedArena::place_locked(size_t bytes) {
  void *probe = mmap(nullptr, kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
  if (probe == MAP_FAILED) {
    fail(Failure::kPlace, errno, bytes);
    return false;
  }
  munmap(probe, kPage);
  const uint64_t top = reinterpret_cast<uintptr_t>(probe) & ~(kWindow - 1);
  constexpr uint64_t kUserEnd = uint64_t{1} << 47;  // x86-64's user space, 4-level paging
  const size_t len = pages_for(bytes) * kPage;
  int error = EEXIST;
  for (unsigned i = 0; i < 24 && error == EEXIST; ++i) {
    // Below: 256 GiB, then the next seven GiB down, then 512 GiB, 1 TiB, ... 32 TiB. Then
    // above: 256 GiB and the next seven GiB up.
    uintptr_t at;
    if (i < 16) {
      const uint64_t below = i < 8 ? kPlaceBelow + i * kWindow : kPlaceBelow << (i - 7);
      if (top < below + kWindow) continue;
      at = top - below;
    } else {
      at = top + kPlaceBelow + (i - 16) * kWindow;
      if (at + kWindow > kUserEnd) break;
    }
    error = map_at(at, len);
    if (error != 0) continue;  // EEXIST: try the next place; else the system refuses
    if (!sys::populate(reinterpret_cast<void *>(at), len)) {
      fail(Failure::kPopulate, errno, len);
      munmap(reinterpret_cast<void *>(at), len);
      return false;
    }
    base_.store(at, std::memory_order_release);
    state_.store(pack(0, len / kPage), std::memory_order_release);
    return true;
  }
  fail(Failure::kPlace, error, len);
  return false;
}

// Appends `bytes` (rounded up to pages) to the available part. Under mutex_.
bool PremappedArena::map_locked(size_t bytes) {
  const uintptr_t base = base_.load(std::memory_order_relaxed);
  const uint64_t end = end_of(state_.load(std::memory_order_acquire));
  const uint64_t pages = pages_for(bytes);
  if (pages > kWindowPages - end) {
    fail(Failure::kFull, 0, bytes);
    return false;
  }
  const uintptr_t at = base + end * kPage;
  const size_t len = pages * kPage;
  if (const int error = map_at(at, len)) {
    fail(error == EEXIST ? Failure::kTaken : Failure::kMap, error, len);
    return false;
  }
  if (!sys::populate(reinterpret_cast<void *>(at), len)) {
    fail(Failure::kPopulate, errno, len);
    munmap(reinterpret_cast<void *>(at), len);
    return false;
  }
  // Only this function and trim() move `end`, both under mutex_; hooks move `next`.
  uint64_t state = state_.load(std::memory_order_acquire);
  while (!state_.compare_exchange_weak(state, pack(next_of(state), end + pages),
                                       std::memory_order_acq_rel, std::memory_order_acquire)) {
  }
  return true;
}

// Places the window and creates the jemalloc arena. Under mutex_.
bool PremappedArena::create_locked() {
  if (!place_locked(kCreationBytes)) return false;
  extent_hooks_t *hooks = &hooks_;
  unsigned index;
  size_t len = sizeof(index);
  if (je_mallctl("arenas.create", &index, &len, &hooks, sizeof(hooks)) != 0) {
    fail(Failure::kArena, 0, 0);  // for good: jemalloc may hold some of the window now
    return false;
  }
  char name[64];
  const ssize_t never = -1;
  snprintf(name, sizeof(name), "arena.%u.dirty_decay_ms", index);
  je_mallctl(name, nullptr, nullptr, const_cast<ssize_t *>(&never), sizeof(never));
  snprintf(name, sizeof(name), "arena.%u.muzzy_decay_ms", index);
  je_mallctl(name, nullptr, nullptr, const_cast<ssize_t *>(&never), sizeof(never));
  // The first allocation registers the window's pages in jemalloc's radix tree, which
  // maps the leaf for all of its span now rather than when mmap may be refused.
  if (void *p = je_mallocx(1, MALLOCX_ARENA(index) | MALLOCX_TCACHE_NONE))
    je_dallocx(p, MALLOCX_TCACHE_NONE);
  arena_.store(index, std::memory_order_release);
  return true;
}

bool PremappedArena::provide_locked(size_t bytes) {
  if (arena() == 0 && (base_.load() != 0 || !create_locked())) return false;
  const uint64_t before = available();
  if (before < bytes) {
    const uint64_t missing = bytes - before;
    if (!map_locked(missing < kMapStep ? kMapStep : missing)) return false;
  }
  // What the hooks refused now fits (unless a larger refusal came meanwhile).
  size_t wanted = wanted_.load(std::memory_order_relaxed);
  if (wanted <= bytes) wanted_.compare_exchange_strong(wanted, 0);
  // Cleared here; a hook that takes the arena below the mark again sets it again.
  if (available() >= min_water_.load(std::memory_order_relaxed) && wanted_.load() == 0)
    short_.store(false, std::memory_order_relaxed);
  failure_.store(Failure::kNone, std::memory_order_relaxed);
  return true;
}

bool PremappedArena::provide(size_t bytes) {
  MutexLock lock(mutex_);
  return provide_locked(bytes);
}

bool PremappedArena::try_provide(size_t bytes) {
  if (!mutex_.try_lock()) return false;
  const bool ok = provide_locked(bytes);
  mutex_.unlock();
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
  // No hook hands out pages past new_end any more: give them back, address space
  // included. If the kernel refuses (splitting the mapping would pass vm.max_map_count),
  // they stay available.
  const uint64_t old_end = end_of(state);
  if (munmap(reinterpret_cast<void *>(base + new_end * kPage), (old_end - new_end) * kPage) != 0) {
    state = state_.load(std::memory_order_acquire);
    while (!state_.compare_exchange_weak(state, pack(next_of(state), old_end),
                                         std::memory_order_acq_rel, std::memory_order_acquire)) {
    }
  }
}

size_t PremappedArena::room() const {
  if (base_.load() == 0) return kWindow - kCreationBytes;
  return (kWindowPages - next_of(state_.load(std::memory_order_acquire))) * kPage;
}

size_t PremappedArena::wanted(size_t allowed) const {
  const size_t wanted = wanted_.load(std::memory_order_relaxed);
  const size_t handed_out = next_of(state_.load(std::memory_order_acquire)) * kPage;
  return wanted <= handed_out || wanted <= allowed ? wanted : 0;
}

PremappedArena::Stats PremappedArena::stats() const {
  const uint64_t state = state_.load(std::memory_order_acquire);
  return Stats{end_of(state) * kPage, next_of(state) * kPage,
               (end_of(state) - next_of(state)) * kPage, wasted_.load()};
}

int PremappedArena::describe(char *buf, size_t len) const {
  const int error = failure_errno_.load(std::memory_order_relaxed);
  const size_t bytes = failure_bytes_.load(std::memory_order_relaxed);
  switch (failure_.load(std::memory_order_relaxed)) {
    case Failure::kNone:
      break;
    case Failure::kPlace:
      return snprintf(buf, len, "no address space for its window (mapping %zu bytes: %s)",
                      bytes, errno_text(error));
    case Failure::kTaken:
      return snprintf(buf, len, "another mapping sits where its window would grow");
    case Failure::kMap:
      return snprintf(buf, len, "mapping %zu more bytes was refused (%s)", bytes,
                      errno_text(error));
    case Failure::kPopulate:
      return snprintf(buf, len, "populating %zu bytes was refused (%s)", bytes,
                      errno_text(error));
    case Failure::kFull:
      return snprintf(buf, len, "its window is full (1 GiB, %zu bytes more asked)", bytes);
    case Failure::kArena:
      return snprintf(buf, len, "jemalloc could not create its arena");
  }
  return snprintf(buf, len, "%s", "");
}

}  // namespace allocscope
