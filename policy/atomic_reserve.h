// atomic_reserve.h: the atomic reserve (nowait_reserve:N), GFP_ATOMIC's watermark reserve
// with kswapd's refill.
//
// With nowait_reserve:N, every NOWAIT allocation is served from the atomic reserve's
// premapped arena (premapped_arena.h) with no thread cache: jemalloc finds its memory
// among pages mapped and populated in advance, so a NOWAIT allocation makes no system
// call and never waits on a lock that is held across one. Blocks are ordinary jemalloc
// blocks: free() from any thread. (A free goes through the freeing thread's cache, which
// may hand the block to an ordinary allocation: the arena then has that much less, and the
// refill makes up for it.)
//
// Refills, by watermark (the kernel's low and min watermarks):
//   - below N/2 available ("low"), gate::kRefill is set and the next ordinary (not
//     NOWAIT) allocation, on any thread, maps N more (kswapd's refill);
//   - below N/4 ("min"), the next NOWAIT allocation refills it itself before it is
//     served: nothing else did in time (NOWAIT is the default, or every thread allocating
//     is in a NOWAIT scope), and a reserve nothing refills would cap the process at N
//     bytes. That refill is the one system call NOWAIT makes (an mmap and a populate of
//     about N bytes, bounded), never waits (skipped while another refill or a
//     configuration holds the arena) and after a failure is not tried again by NOWAIT
//     allocations for 10 ms;
//   - when jemalloc fails a NOWAIT allocation because the hooks refused it a block (a
//     request larger than what is left, or a new metadata block, 2 MiB-aligned and
//     growing with the arena, which no watermark predicts), the allocation refills for it
//     and tries once more. So a NOWAIT allocation makes at most two refills, and usually
//     none.
// A refill maps N, or what jemalloc was refused if that is more, as long as it is no more
// than N or the arena has handed out so far: every size the reserve served before is
// served again after a refill, and one huge request does not inflate it. A NOWAIT allocation the reserve cannot serve fails with ENOMEM, and the
// report names the atomic reserve and what its last refill ran into.
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

// A NOWAIT allocation about to be served by the reserve: refills it first if it is below
// its min watermark (or a request was refused since the last refill). One load when not.
void before_nowait();
// After jemalloc failed a NOWAIT allocation in the reserve's arena: true if the hooks had
// refused it a block no larger than N or than all the arena has handed out (a large
// block, or a new metadata block, which no watermark predicts) and a refill now
// provided it, so one more attempt will find it.
bool refill_for_refused();

// Why a NOWAIT allocation of `size` the reserve could not serve failed, for its report
// (snprintf semantics).
int describe_failure(char *buf, size_t len, size_t size);

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
