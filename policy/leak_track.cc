// leak_track.cc: see leak_track.h. An open-addressing table of (block, size), linear
// probing with tombstones, under a spin lock: it only runs in sweep runs after an
// injection, where simplicity matters more than contention.
#include "leak_track.h"

#include <sched.h>
#include <sys/mman.h>

#include <atomic>

#include "backend.h"
#include "gate.h"
#include "hash.h"
#include "options.h"
#include "region.h"

namespace allocscope {
namespace leak_track {
namespace {

constexpr int kSlotBits = 20;
constexpr size_t kSlots = size_t{1} << kSlotBits;
constexpr uintptr_t kTombstone = 1;

struct Slot {
  uintptr_t key;  // 0: empty; kTombstone: freed
  size_t size;
};

Slot *g_table = nullptr;
std::atomic<bool> g_started{false};
std::atomic_flag g_lock = ATOMIC_FLAG_INIT;
// Written under the lock, read without it: totals() runs in signal handlers (a crash
// record), where waiting for a lock the interrupted code holds would never end.
std::atomic<uint64_t> g_bytes{0}, g_blocks{0};
size_t g_used = 0;  // slots not empty (live or tombstones)
std::atomic<bool> g_overflow{false};

class SpinLock {
 public:
  SpinLock() {
    while (g_lock.test_and_set(std::memory_order_acquire)) sched_yield();
  }
  ~SpinLock() { g_lock.clear(std::memory_order_release); }
};

size_t usable(void *p) {
  return region::contains(p) ? region::usable_size(p) : je_malloc_usable_size(p);
}

}  // namespace

void start() {
  if (g_fault_settings.events[0] == '\0' || g_started.exchange(true)) return;
  void *table = mmap(nullptr, kSlots * sizeof(Slot), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (table == MAP_FAILED) {
    g_overflow.store(true);
    return;
  }
  g_table = static_cast<Slot *>(table);
  gate::change(gate::kLeakTrack, 0);
}

void allocated(void *p) {
  if (p == nullptr || g_table == nullptr) return;
  const uintptr_t key = reinterpret_cast<uintptr_t>(p);
  const size_t size = usable(p);
  SpinLock lock;
  if (g_overflow.load(std::memory_order_relaxed)) return;
  if (g_used >= kSlots / 4 * 3) {  // probing would get long: stop, say it is a lower bound
    g_overflow.store(true, std::memory_order_relaxed);
    return;
  }
  size_t slot = fibonacci_slot(key, kSlotBits);
  size_t tomb = kSlots;
  for (;; slot = (slot + 1) % kSlots) {
    Slot &s = g_table[slot];
    if (s.key == key) return;  // already tracked (cannot happen for a live block)
    if (s.key == kTombstone && tomb == kSlots) tomb = slot;
    if (s.key == 0) break;
  }
  if (tomb != kSlots) slot = tomb;
  else ++g_used;
  g_table[slot] = {key, size};
  g_bytes.fetch_add(size, std::memory_order_relaxed);
  g_blocks.fetch_add(1, std::memory_order_relaxed);
}

void freed(void *p) {
  if (p == nullptr || g_table == nullptr) return;
  const uintptr_t key = reinterpret_cast<uintptr_t>(p);
  SpinLock lock;
  for (size_t slot = fibonacci_slot(key, kSlotBits);; slot = (slot + 1) % kSlots) {
    Slot &s = g_table[slot];
    if (s.key == 0) return;  // allocated before the injection: not tracked
    if (s.key == key) {
      g_bytes.fetch_sub(s.size, std::memory_order_relaxed);
      g_blocks.fetch_sub(1, std::memory_order_relaxed);
      s.key = kTombstone;
      return;
    }
  }
}

void after_fork_child() { g_lock.clear(std::memory_order_release); }

Totals totals() {
  if (!g_started.load()) return {0, 0, false, false};
  return {g_bytes.load(std::memory_order_relaxed), g_blocks.load(std::memory_order_relaxed), true,
          g_overflow.load(std::memory_order_relaxed)};
}

}  // namespace leak_track
}  // namespace allocscope
