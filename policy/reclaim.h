// reclaim.h: reclaim callbacks (the shrinker analogue) and the reclaim pass.
//
// A pass asks each registered reclaimer that the thread's flags do not exclude for the
// bytes still wanted, in registration order, until enough is freed. While a reclaimer
// runs, its thread has NORECLAIM|MEMALLOC added to its scope (an allocation inside it
// never re-enters reclaim and may use the emergency allowance) and the reclaimer is
// marked busy: a pass on another thread skips it rather than run it twice at once.
// When the backend itself failed (not the budget), the pass also flushes the thread's
// cache and purges jemalloc's dirty pages.
#pragma once

#include <stddef.h>

#include "allocscope.h"
#include "flags.h"

namespace allocscope {
namespace reclaim {

inline constexpr int kMaxReclaimers = 64;

int add(const char *name, unsigned klass, allocscope_reclaim_fn fn, void *arg);
int remove(int id);
// How many reclaimers are registered.
int registered();

// Runs one pass for a thread whose flags are `flags`; returns the bytes the reclaimers
// reported freeing (plus jemalloc's purged bytes when backend_failed).
size_t run_pass(size_t wanted, Flags flags, bool backend_failed);

void prefork();
void postfork_parent();
void postfork_child();

}  // namespace reclaim
}  // namespace allocscope
