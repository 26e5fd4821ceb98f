// stack_id.h: an allocation's identity as a call stack, the key of `allocscope sweep
// --mode stack` and of fault.stack.
//
// A stack is the first fault.depth return addresses outside allocscope (backtrace.h),
// each named "module+0xoffset" (callsite.h: the object's file name and the offset from
// its load base), so the identity is the same in every run despite ASLR. Its hash is
// FNV-1a over each frame's module file name and offset, printed as 16 hex digits: fault.log and
// fault.record print it and fault.stack takes it. Nothing is symbolised: each frame is a
// lookup in the call-site cache (callsite.h, which caches the module and its base per
// return address), so hashing costs the unwinding plus a hash-table probe per frame.
//
// fault.record lists each distinct stack of eligible allocations with its count and its
// frames; the table is fixed (kStacks entries, no allocation: it is filled inside malloc).
// Stacks past a full table are counted in g_stacks_dropped and said so in the record.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "backtrace.h"

namespace allocscope {
namespace stack_id {

// The hash of frames[0, n).
uint64_t hash(void *const *frames, int n);

// Counts one eligible allocation with this stack (for fault.record).
void count(uint64_t hash, void *const *frames, int n);

// Calls fn(hash, frames, n, count) for every counted stack.
template <typename Fn>
void for_each(Fn fn);

// Writes the stack hash as 16 hex digits and a NUL (buf: at least 17 bytes).
void format_hash(uint64_t hash, char *buf);

namespace detail {
inline constexpr size_t kStacks = 16384;
struct Entry {
  std::atomic<uint64_t> hash;     // 0: empty (a stack that hashes to 0 is stored as 1)
  std::atomic<bool> ready;        // frames written
  std::atomic<uint64_t> count;
  int n;
  void *frames[kMaxFrames];
};
extern Entry g_stacks[kStacks];
}  // namespace detail
extern std::atomic<uint64_t> g_stacks_dropped;

template <typename Fn>
void for_each(Fn fn) {
  for (detail::Entry &e : detail::g_stacks)
    if (e.hash.load() != 0 && e.ready.load(std::memory_order_acquire) && e.count.load() != 0)
      fn(e.hash.load(), static_cast<void *const *>(e.frames), e.n, e.count.load());
}

}  // namespace stack_id
}  // namespace allocscope
