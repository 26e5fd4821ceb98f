// atomic_reserve.h: the atomic reserve (nowait_reserve:N), GFP_ATOMIC's watermark reserve
// with kswapd's refill.
//
// With nowait_reserve:N, every NOWAIT allocation is served from the atomic reserve's
// premapped arena (premapped_arena.h) with no thread cache: jemalloc finds its memory
// among pages mapped and populated in advance, so a NOWAIT allocation makes no system
// call and never waits on a lock that is held across one. When fewer than N/2 premapped
// bytes are left, gate::kRefill is set and the next ordinary (not NOWAIT) allocation, on
// any thread, maps N more; while the reserve is empty NOWAIT allocations fail (ENOMEM).
// Blocks are ordinary jemalloc blocks: free() from any thread. (A free goes through the
// freeing thread's cache, which may hand the block to an ordinary allocation: the arena
// then has that much less, and the refill makes up for it.)
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace allocscope {
namespace atomic_reserve {

// nowait_reserve:N. Maps N bytes now; 0 turns it off (the arena keeps what it handed
// out, the rest goes back to the system). False if the memory could not be mapped.
bool configure(size_t bytes);
size_t size();

// mallocx flags that send a NOWAIT allocation to the reserve (0 while it is off).
int mallocx_flags();
// The reserve's jemalloc arena, 0 before the first nowait_reserve (it stays after
// nowait_reserve:0): mallctl("arenas.lookup") names it for the blocks the reserve served.
unsigned arena();

// The refill an ordinary allocation makes when gate::kRefill is set. Never waits for
// another refill: if one is running, this allocation goes on.
void refill();

struct Stats {
  size_t size, available, handed_out;
  uint64_t refills;
};
Stats stats();

void prefork();
void postfork_parent();
void postfork_child();

}  // namespace atomic_reserve
}  // namespace allocscope
