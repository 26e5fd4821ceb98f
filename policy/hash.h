// hash.h: the one hash allocscope's fixed-size tables use (call sites, regions, reported
// conflicts): Fibonacci hashing, the key times 2^64 / phi, whose top bits are the slot.
// Keys are addresses or page numbers, whose low bits carry little: the multiplication
// moves the information up.
#pragma once

#include <stdint.h>

namespace allocscope {

// The slot of `key` in a table of 2^bits entries.
inline uint32_t fibonacci_slot(uint64_t key, int bits) {
  return static_cast<uint32_t>((key * 0x9E3779B97F4A7C15ull) >> (64 - bits));
}

}  // namespace allocscope
