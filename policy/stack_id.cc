// stack_id.cc: see stack_id.h.
#include "stack_id.h"

#include <string.h>

#include "callsite.h"
#include "hash.h"

namespace allocscope {
namespace stack_id {
namespace detail {
Entry g_stacks[kStacks];
}  // namespace detail
std::atomic<uint64_t> g_stacks_dropped{0};

namespace {

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr uint64_t kFnvPrime = 0x100000001b3ull;

uint64_t mix(uint64_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(s[i])) * kFnvPrime;
  return h;
}

}  // namespace

uint64_t hash(void *const *frames, int n) {
  uint64_t h = kFnvOffset;
  for (int i = 0; i < n; ++i) {
    // The frame's module file name and offset, through the call-site cache (no text is
    // formatted: this runs on every eligible allocation); an address no object holds by
    // its text, which is what fault.record prints for it.
    const char *module;
    uintptr_t at;
    if (call_site_parts(frames[i], &module, &at)) {
      h = mix(h, module, strlen(module));
      const uint64_t offset = at;
      h = mix(h, reinterpret_cast<const char *>(&offset), sizeof(offset));
    } else {
      char name[320];
      format_call_site(frames[i], name, sizeof(name));
      h = mix(h, name, strlen(name));
    }
    h = mix(h, "\n", 1);
  }
  return h != 0 ? h : 1;  // 0 marks an empty table entry
}

void count(uint64_t h, void *const *frames, int n) {
  using detail::g_stacks;
  using detail::kStacks;
  size_t slot = fibonacci_slot(h, 14);  // kStacks
  for (size_t probe = 0; probe < 256; ++probe, slot = (slot + 1) % kStacks) {
    detail::Entry &e = g_stacks[slot];
    uint64_t current = e.hash.load(std::memory_order_acquire);
    if (current == 0) {
      if (!e.hash.compare_exchange_strong(current, h)) {
        if (current != h) continue;
      } else {
        e.n = n < kMaxFrames ? n : kMaxFrames;
        memcpy(e.frames, frames, sizeof(void *) * static_cast<size_t>(e.n));
        e.ready.store(true, std::memory_order_release);
      }
    } else if (current != h) {
      continue;
    }
    e.count.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  g_stacks_dropped.fetch_add(1, std::memory_order_relaxed);
}

void format_hash(uint64_t h, char *buf) {
  static const char kDigits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i, h >>= 4) buf[i] = kDigits[h & 15];
  buf[16] = '\0';
}

}  // namespace stack_id
}  // namespace allocscope
