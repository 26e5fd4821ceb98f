// pool.h: allocscope_pool_*, the kernel's mempool (mm/mempool.c) in user space.
//
// A pool keeps min_nr elements of one size held back, so that a thread which gets an
// element and returns it in bounded time always makes progress, however exhausted the
// budget. Elements are ordinary allocations through the engine (charged, policed,
// fault-injectable) and ordinary blocks afterwards; held-back ones stay charged.
//
//   create   allocates the pool (its held-back array included) and min_nr elements under
//            the calling thread's policy; if one fails it frees what it got: NULL, ENOMEM.
//            min_nr 0 holds one element, as newer kernels do. elem_size 0 (EINVAL) and
//            elem_size * min_nr above max_size (ENOMEM) are reported.
//   alloc    1. a light attempt: the call-site flags with NOWAIT|NOWARN|NOMEMALLOC and no
//               other contract (no reclaim, wait, report or emergency allowance). It is
//               mempool_alloc's first pass, which lacks __GFP_DIRECT_RECLAIM: the
//               held-back set is used before reclaim runs. Fault injection may fail it,
//               forcing the held-back set (the kernel's fail_mempool_alloc).
//            2. a held-back element (zeroed for ALLOCSCOPE_ZERO).
//            3. if the resolved contract (call-site flags, the thread's scope, the rules,
//               the default policy) is NOWAIT: NULL, ENOMEM, unreported: for a pool user
//               that is an expected outcome, not a warning.
//            4. an attempt under the caller's contract with NOWARN|NOMEMALLOC added, as
//               mempool_adjust_gfp does; NOFAIL runs as RETRY_MAYFAIL|NOFAULT, because the
//               engine's NOFAIL wait only wakes for memory freed to the budget and would
//               sleep on beside an element returned to this pool.
//            5. a wait for free_element() on another thread, at most 5 s (mempool's
//               io_schedule_timeout(5*HZ)), then from 2 again.
//            So every contract but NOWAIT waits until it gets an element: NULL only under
//            NOWAIT, as mempool_alloc fails only without __GFP_DIRECT_RECLAIM. A call-site
//            NOFAIL in a NOWAIT scope follows nofail_in_nowait's resolution (wait: it
//            waits; fail: NOWAIT), unreported.
//   free     keeps the element if fewer than min_nr are held back, waking one waiter;
//            otherwise frees it.
//   destroy  frees the held-back elements and the pool. Elements handed out and not
//            returned through free_element are reported (their count) and stay valid,
//            as ordinary blocks for free(). Nobody may use or wait on the pool meanwhile.
//
// A pool's lock guards only its held-back array: nothing allocates, frees or takes
// another lock while holding it, so a reclaimer may return elements. All pools' locks
// are held across fork() (lifecycle.cc). The counters are in counters.h.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "allocscope.h"
#include "flags.h"

namespace allocscope {
namespace pool {

// callsite: the caller's return address, for the rules and for reports.
allocscope_pool *create(size_t elem_size, unsigned min_nr, const void *callsite);
void *alloc_element(allocscope_pool *pool, Flags flags, const void *callsite);
// pool NULL: elem is freed.
void free_element(allocscope_pool *pool, void *elem);
void destroy(allocscope_pool *pool, const void *callsite);

// Fork (lifecycle.cc): every pool's lock is held across fork().
void prefork();
void postfork_parent();
void postfork_child();

}  // namespace pool
}  // namespace allocscope
