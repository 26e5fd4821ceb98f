// region.cc: see region.h.
//
// Every page of the window is, at all times, either a region's data (read-write) or
// reserved (PROT_NONE, MAP_NORESERVE). A guard page is simply a reserved page that belongs
// to a region rather than to the free list, so making one, or returning a range, is one
// mmap over the pages.
//
// The bookkeeping sits in one separate mapping, made with the window (region.cc runs
// inside malloc: no malloc, no new, no static constructors), all of it under g_mutex:
//   - a record per live region, found by an open-addressing hash on its start. Records
//     are kept aside rather than in a header page before the data, so a buffer underrun
//     cannot corrupt them and a region costs no extra page of memory;
//   - the window's free address space: a sorted array of disjoint ranges, never
//     adjacent (coalesced on every return), allocated first-fit.
// The lock is held across the system calls too: they serialise on the kernel's mmap
// lock anyway, and a fork then never sees an operation half done.
//
// Growing moves the pages twice, so that the window never has a hole and a region stays
// one kernel mapping (VMA):
//   1. mremap(MREMAP_DONTUNMAP) moves them wherever the kernel likes, which is outside
//      the window (it has no free address space); the old range stays mapped, empty;
//   2. mremap(MREMAP_FIXED) moves them to their new place, extending the mapping with
//      the new pages; it replaces what was there (the emptied old range when growing in
//      place, reserved pages otherwise) in one step;
//   3. if the region moved, its old range is reserved again.
// Why not one mremap(MREMAP_MAYMOVE|MREMAP_FIXED): it unmaps the old range, and until
// that is reserved again another thread's mmap may land inside the window, where
// contains() would claim it. Why not grow in place by mapping pages after the data: the
// kernel does not merge them with pages that have been moved (their page offset no
// longer matches their address), and mremap refuses to resize a range that spans two
// mappings. Page tables move; no page is copied or touched.
#include "region.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hash.h"
#include "mutex.h"
#include "report.h"
#include "sys.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4  // Linux 5.7; older headers lack it
#endif

namespace allocscope {
namespace region {

std::atomic<uintptr_t> g_window_base{0};
std::atomic<uintptr_t> g_window_size{0};

namespace {

constexpr uint32_t kMaxRegions = 1 << 16;
// Free ranges are separated by the extents (data plus guard) of live regions, of which a
// growth holds one more while it moves, and by leaked ranges (g_leaked), which count as
// regions: the array can never overflow.
constexpr uint32_t kMaxRanges = kMaxRegions + 2;
constexpr int kSlotBits = 17;  // twice kMaxRegions: the hash is at most half full
constexpr uint32_t kSlotMask = (1u << kSlotBits) - 1;

struct Record {
  uintptr_t start;
  size_t len;      // data bytes, a page multiple
  size_t align;    // kept when the region moves
  uint32_t next;   // while unused: index + 1 of the next unused record
  bool guard;
  bool zero_unused;
};

struct Range {
  uintptr_t start, end;
};

struct Table {
  Record records[kMaxRegions];
  uint32_t slots[kSlotMask + 1];  // index + 1 of a record, 0 = empty
  Range free[kMaxRanges];         // sorted by start
};

Mutex g_mutex{LockRank::kRegion};
size_t g_window_bytes ABSL_GUARDED_BY(g_mutex) = size_t{64} << 30;
bool g_guard ABSL_GUARDED_BY(g_mutex) = true;
Table *g_table ABSL_GUARDED_BY(g_mutex);  // null until the window exists
uint32_t g_nfree ABSL_GUARDED_BY(g_mutex);
uint32_t g_unused ABSL_GUARDED_BY(g_mutex);        // index + 1 of the first unused record (0 = none)
uint32_t g_records_made ABSL_GUARDED_BY(g_mutex);  // records[g_records_made..] were never used
// Live regions allowed: a guarded region costs two kernel mappings (data, and the guard
// that splits the reserved pages), and past vm.max_map_count the kernel refuses every
// mmap, so regions may use at most half of it and leave the rest to the process.
uint32_t g_max_regions ABSL_GUARDED_BY(g_mutex);
// Ranges kept out of the free list for good because the kernel would not take their
// pages back (see retire).
uint32_t g_leaked ABSL_GUARDED_BY(g_mutex);

std::atomic<size_t> g_regions{0};
std::atomic<size_t> g_bytes{0};
std::atomic<uint64_t> g_moved{0};
std::atomic<uint64_t> g_in_place{0};

// Counters change only under g_mutex, so a load and a store suffice; readers need no lock.
template <typename T>
void add(std::atomic<T> &counter, T by) {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}
template <typename T>
void sub(std::atomic<T> &counter, T by) {
  counter.store(counter.load(std::memory_order_relaxed) - by, std::memory_order_relaxed);
}

size_t page() { return sys::page_size(); }

// vm.max_map_count, or the kernel's default if it cannot be read.
size_t max_map_count() {
  size_t n = 0;
  char buf[24];
  const int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);
  const ssize_t len = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
  if (fd >= 0) close(fd);
  for (ssize_t i = 0; i < len && buf[i] >= '0' && buf[i] <= '9'; ++i) n = n * 10 + (buf[i] - '0');
  return n == 0 ? 65530 : n;
}

bool ensure_window() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  if (g_table != nullptr) return true;
  void *table = mmap(nullptr, sizeof(Table), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (table == MAP_FAILED) return false;
  void *window = mmap(nullptr, g_window_bytes, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (window == MAP_FAILED) {
    munmap(table, sizeof(Table));
    return false;
  }
  g_table = static_cast<Table *>(table);
  const size_t quarter = max_map_count() / 4;
  g_max_regions = quarter < kMaxRegions ? static_cast<uint32_t>(quarter) : kMaxRegions;
  const auto base = reinterpret_cast<uintptr_t>(window);
  // The first page stays reserved, so that no region's data is ever adjacent to (and
  // merged by the kernel into one mapping with) whatever lies below the window: the
  // fallback in retire() can only change whole mappings. The last one stays reserved
  // for the same reason when guard pages are off.
  g_table->free[0] = {base + page(), base + g_window_bytes - page()};
  g_nfree = 1;
  g_window_base.store(base, std::memory_order_relaxed);
  g_window_size.store(g_window_bytes, std::memory_order_release);
  return true;
}

// size in whole pages (0 counts as 1); false if it could never fit the window.
bool page_round(size_t size, size_t *len) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  if (size > g_window_bytes) return false;
  *len = size == 0 ? page() : (size + page() - 1) & ~(page() - 1);
  return true;
}

size_t guard_of(const Record &r) { return r.guard ? page() : 0; }

// ---- Mappings ----

bool reserve(uintptr_t start, size_t len) {
  return sys::reserve_range(reinterpret_cast<void *>(start), len);
}

// Reserves again a range that a failed MAP_FIXED or MREMAP_FIXED call may have unmapped:
// a hole would let any other mmap land inside the window. madvise fails with ENOMEM on
// unmapped pages, and is not refused at vm.max_map_count, where mmap fails before it
// has changed anything.
void fill_hole(uintptr_t start, size_t len) {
  if (len == 0 || madvise(reinterpret_cast<void *>(start), len, MADV_NORMAL) == 0 ||
      reserve(start, len))
    return;
  report("region: cannot reserve %zu bytes at %p again (errno %d); aborting", len,
         reinterpret_cast<void *>(start), errno);
  abort();
}

// Moves the pages of [from, from + len) to [to, to + new_len), extending the mapping
// (steps 1 and 2 at the top of this file). False, with the pages where they were, if
// the kernel refused.
bool move_pages(uintptr_t from, size_t len, uintptr_t to, size_t new_len) {
  void *const old = reinterpret_cast<void *>(from);
  // With DONTUNMAP the kernel reads the destination even without MREMAP_FIXED (as a hint,
  // rejected with EINVAL if it overlaps the source), and glibc's wrapper passes on
  // whatever is in that register unless it is given: so give it, null.
  void *const aside = mremap(old, len, len, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, nullptr);
  if (aside == MAP_FAILED) return false;
  if (mremap(aside, len, new_len, MREMAP_MAYMOVE | MREMAP_FIXED,
             reinterpret_cast<void *>(to)) != MAP_FAILED)
    return true;
  // Back over the range DONTUNMAP left mapped; the failed call may have unmapped the
  // destination first.
  if (mremap(aside, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, old) == MAP_FAILED) {
    report("region: the pages of %p are stranded at %p (errno %d); aborting", old, aside,
           errno);
    abort();
  }
  if (to == from) fill_hole(from + len, new_len - len);
  else fill_hole(to, new_len);
  return false;
}

// ---- Records, by start address ----

uint32_t home(uintptr_t start) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  return fibonacci_slot(start / page(), kSlotBits);
}

// The slot holding the record that starts at `start`, or the empty slot where it would go.
uint32_t probe(uintptr_t start) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  const uint32_t *slots = g_table->slots;
  uint32_t i = home(start);
  while (slots[i] != 0 && g_table->records[slots[i] - 1].start != start)
    i = (i + 1) & kSlotMask;
  return i;
}

Record *find(const void *p, uint32_t *slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  if (g_table == nullptr) return nullptr;
  *slot = probe(reinterpret_cast<uintptr_t>(p));
  const uint32_t index = g_table->slots[*slot];
  return index == 0 ? nullptr : &g_table->records[index - 1];
}

void index_record(Record &r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  g_table->slots[probe(r.start)] = static_cast<uint32_t>(&r - g_table->records) + 1;
}

// Linear-probing deletion: later entries of the run move back, so no tombstones.
void unindex(uint32_t i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  uint32_t *slots = g_table->slots;
  slots[i] = 0;
  for (uint32_t j = (i + 1) & kSlotMask; slots[j] != 0; j = (j + 1) & kSlotMask) {
    // The entry at j may fill the gap at i unless its home lies after i (cyclically).
    const uint32_t h = home(g_table->records[slots[j] - 1].start);
    if (((j - h) & kSlotMask) >= ((j - i) & kSlotMask)) {
      slots[i] = slots[j];
      slots[j] = 0;
      i = j;
    }
  }
}

Record *new_record() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  if (g_regions.load(std::memory_order_relaxed) + g_leaked >= g_max_regions) return nullptr;
  uint32_t index;
  if (g_unused != 0) {
    index = g_unused - 1;
    g_unused = g_table->records[index].next;
  } else {
    index = g_records_made++;
  }
  return &g_table->records[index];
}

void drop_record(Record &r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  r.next = g_unused;
  g_unused = static_cast<uint32_t>(&r - g_table->records) + 1;
}

// ---- Free address space ----

// The first range whose start is >= a.
uint32_t lower_bound(uintptr_t a) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  uint32_t lo = 0, hi = g_nfree;
  while (lo < hi) {
    const uint32_t mid = (lo + hi) / 2;
    if (g_table->free[mid].start < a) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

void insert_range(uint32_t i, Range r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  Range *f = g_table->free;
  memmove(&f[i + 1], &f[i], (g_nfree - i) * sizeof(Range));
  f[i] = r;
  ++g_nfree;
}

void erase_range(uint32_t i) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  Range *f = g_table->free;
  memmove(&f[i], &f[i + 1], (g_nfree - i - 1) * sizeof(Range));
  --g_nfree;
}

// Takes [a, b) out of free range i, which contains it.
void carve(uint32_t i, uintptr_t a, uintptr_t b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  Range &r = g_table->free[i];
  if (r.start < a && b < r.end) {
    const Range tail{b, r.end};
    r.end = a;
    insert_range(i + 1, tail);
  } else if (r.start < a) {
    r.end = a;
  } else if (b < r.end) {
    r.start = b;
  } else {
    erase_range(i);
  }
}

// First fit: the lowest `len` bytes starting at a multiple of `align`; 0 if none.
uintptr_t take(size_t len, size_t align) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  for (uint32_t i = 0; i < g_nfree; ++i) {
    const Range r = g_table->free[i];
    const uintptr_t a = (r.start + align - 1) & ~(align - 1);
    if (a < r.start || a > r.end || r.end - a < len) continue;
    carve(i, a, a + len);
    return a;
  }
  return 0;
}

// Takes [a, a + len) if it is free: for growing in place.
bool take_at(uintptr_t a, size_t len) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  const uint32_t i = lower_bound(a);
  if (i == g_nfree || g_table->free[i].start != a || g_table->free[i].end - a < len)
    return false;
  carve(i, a, a + len);
  return true;
}

// Returns [a, b), which must be reserved, coalescing with its neighbours.
void give(uintptr_t a, uintptr_t b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  Range *f = g_table->free;
  const uint32_t i = lower_bound(a);
  const bool joins_prev = i > 0 && f[i - 1].end == a;
  const bool joins_next = i < g_nfree && f[i].start == b;
  if (joins_prev && joins_next) {
    f[i - 1].end = f[i].end;
    erase_range(i);
  } else if (joins_prev) {
    f[i - 1].end = b;
  } else if (joins_next) {
    f[i].start = a;
  } else {
    insert_range(i, {a, b});
  }
  // The free list stays sorted, its ranges disjoint and never adjacent (coalesced).
  AS_DEBUG_ASSERT(i == 0 || i > g_nfree || f[i - 1].start < f[i - 1].end);
  AS_DEBUG_ASSERT(i + 1 >= g_nfree || f[i].end < f[i + 1].start);
  AS_DEBUG_ASSERT(i < 2 || f[i - 2].end < f[i - 1].start);
}

// Returns the data pages [start, start + len) to the system, leaving the range reserved.
// An mmap over one whole mapping needs no new one, but once the process has more mappings
// than vm.max_map_count the kernel refuses every mmap: then the pages are dropped and the
// range made inaccessible where it is (it stays committed until reused).
bool retire(uintptr_t start, size_t len) {
  void *const p = reinterpret_cast<void *>(start);
  return reserve(start, len) ||
         (madvise(p, len, MADV_DONTNEED) == 0 && mprotect(p, len, PROT_NONE) == 0);
}

// Returns a region's extent to the free list (its guard is reserved already), or leaks it
// if the kernel would not even take the pages back.
void give_back(uintptr_t start, size_t len, size_t guard) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  if (retire(start, len)) give(start, start + len + guard);
  else ++g_leaked;
}

// ---- Operations, under g_mutex ----

// Regions of 2 MiB and more may use transparent huge pages (as vmalloc maps kvmalloc's
// fallback with huge pages where it can): far fewer faults to fill them. The VMA flag
// follows the pages through mremap, so it is set again only because a region may first
// reach the size by growing. Advice the kernel declines changes nothing.
constexpr size_t kHugePage = size_t{2} << 20;
void advise_huge(uintptr_t start, size_t len) {
  if (len >= kHugePage) madvise(reinterpret_cast<void *>(start), len, MADV_HUGEPAGE);
}

void *allocate_locked(size_t size, size_t align, bool zero_unused) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  size_t len;
  if (!ensure_window() || !page_round(size, &len)) return nullptr;
  if (align < page()) align = page();
  const size_t guard = g_guard ? page() : 0;
  Record *r = new_record();
  if (r == nullptr) return nullptr;
  const uintptr_t start = take(len + guard, align);
  if (start == 0) {
    drop_record(*r);
    return nullptr;
  }
  void *p = mmap(reinterpret_cast<void *>(start), len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  if (p == MAP_FAILED) {
    fill_hole(start, len);
    give(start, start + len + guard);
    drop_record(*r);
    return nullptr;
  }
  *r = Record{start, len, align, 0, guard != 0, zero_unused};
  advise_huge(start, len);
  index_record(*r);
  add(g_regions, size_t{1});
  add(g_bytes, len);
  return p;
}

// Never fails: if the tail cannot be unmapped, the region keeps it.
void shrink(Record &r, size_t len, size_t new_size) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  if (len < r.len) {
    const uintptr_t cut = r.start + len;  // the new guard page starts here
    if (reserve(cut, r.len - len)) {
      give(cut + guard_of(r), r.start + r.len + guard_of(r));
      sub(g_bytes, r.len - len);
      r.len = len;
    }
  }
  if (r.zero_unused && new_size < r.len)
    memset(reinterpret_cast<void *>(r.start + new_size), 0, r.len - new_size);
}

void *grow_locked(void *p, size_t new_size, int *err) ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_mutex) {
  uint32_t slot;
  Record *r = find(p, &slot);
  if (r == nullptr) {
    *err = EINVAL;
    return nullptr;
  }
  size_t len;
  if (!page_round(new_size, &len)) {
    *err = ENOMEM;
    return nullptr;
  }
  if (len <= r->len) {
    shrink(*r, len, new_size);
    return p;
  }
  const size_t guard = guard_of(*r);
  const uintptr_t old = r->start;
  const uintptr_t old_end = old + r->len + guard;
  const size_t more = len - r->len;
  // In place when the address space after the guard is free: the old guard page
  // becomes data and the page after the new end the guard.
  uintptr_t dest = old;
  if (!take_at(old_end, more)) {
    dest = take(len + guard, r->align);
    if (dest == 0) {
      *err = ENOMEM;
      return nullptr;
    }
  }
  if (!move_pages(old, r->len, dest, len)) {
    if (dest == old) give(old_end, old_end + more);
    else give(dest, dest + len + guard);
    *err = ENOMEM;
    return nullptr;
  }
  if (dest == old) {
    add(g_in_place, uint64_t{1});
  } else {
    give_back(old, r->len, guard);
    unindex(slot);
    r->start = dest;
    index_record(*r);
    add(g_moved, uint64_t{1});
  }
  add(g_bytes, more);
  r->len = len;
  advise_huge(dest, len);
  return reinterpret_cast<void *>(dest);
}

}  // namespace

bool set_window_size(size_t bytes) {
  g_mutex.lock();
  const bool ok = g_table == nullptr && bytes >= 3 * page() && bytes <= SIZE_MAX - page();
  if (ok) g_window_bytes = (bytes + page() - 1) & ~(page() - 1);
  g_mutex.unlock();
  return ok;
}

void set_guard(bool on) {
  g_mutex.lock();
  g_guard = on;
  g_mutex.unlock();
}

void *allocate(size_t size, size_t align, bool zero_unused) {
  if ((align & (align - 1)) != 0) {
    errno = EINVAL;
    return nullptr;
  }
  g_mutex.lock();
  void *p = allocate_locked(size, align, zero_unused);
  g_mutex.unlock();
  if (p == nullptr) errno = ENOMEM;
  return p;
}

size_t usable_size(const void *p) {
  g_mutex.lock();
  uint32_t slot;
  const Record *r = find(p, &slot);
  const size_t len = r == nullptr ? 0 : r->len;
  g_mutex.unlock();
  return len;
}

bool release(void *p) {
  const int saved_errno = errno;
  g_mutex.lock();
  uint32_t slot;
  Record *r = find(p, &slot);
  if (r != nullptr) {
    give_back(r->start, r->len, guard_of(*r));
    sub(g_regions, size_t{1});
    sub(g_bytes, r->len);
    unindex(slot);
    drop_record(*r);
  }
  g_mutex.unlock();
  errno = saved_errno;
  return r != nullptr;
}

bool in_free_space(const void *p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  MutexLock lock(g_mutex);
  if (g_table == nullptr) return false;
  const uint32_t i = lower_bound(a + 1);  // the first range starting after a
  return i > 0 && g_table->free[i - 1].start <= a && a < g_table->free[i - 1].end;
}

void *grow(void *p, size_t new_size) {
  int err = 0;
  g_mutex.lock();
  void *q = grow_locked(p, new_size, &err);
  g_mutex.unlock();
  if (q == nullptr) errno = err;
  return q;
}

Stats stats() {
  return Stats{g_regions.load(std::memory_order_relaxed), g_bytes.load(std::memory_order_relaxed),
               g_moved.load(std::memory_order_relaxed),
               g_in_place.load(std::memory_order_relaxed)};
}

void prefork() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_mutex.lock(); }
void postfork_parent() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_mutex.unlock(); }
void postfork_child() ABSL_NO_THREAD_SAFETY_ANALYSIS { g_mutex.unlock(); }

}  // namespace region
}  // namespace allocscope
