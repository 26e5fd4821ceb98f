// scope.cc: see scope.h.
#include "scope.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "engine.h"
#include "report.h"
#include "stats.h"
#include "thread_state.h"

namespace allocscope {
namespace {

constexpr allocscope_cookie_t kClearBit = 1ull << 63;
constexpr uint32_t kMaxDepth = 0x7fffffff;

// +1, -1 or 0 as a thread's scope gains, loses or keeps a property.
int delta(bool now, bool &before) {
  const int d = now == before ? 0 : now ? 1 : -1;
  before = now;
  return d;
}

// A scope that changes what happens on failure sends failures to the engine (for all
// threads, see kEngagedOnFailure); successes stay on the fast path. A KV scope engages
// reallocs (kEngagedKv); RESERVE and NOWAIT scopes may be served by reserves
// (kEngagedReserves). Only a change of the thread's state touches the shared counts.
void update_engaged(ThreadState &t) {
  ScopeDeltas d;
  d.failure = delta(t.scope & (ALLOCSCOPE_NOFAIL | ALLOCSCOPE_RETRY_MAYFAIL), t.failure_scope);
  d.kv = delta(t.scope & ALLOCSCOPE_KV, t.kv_scope);
  d.reserve = delta(t.scope & ALLOCSCOPE_RESERVE, t.reserve_scope);
  d.nowait = delta(t.scope & ALLOCSCOPE_NOWAIT, t.nowait_scope);
  if (d.failure == 0 && d.kv == 0 && d.reserve == 0 && d.nowait == 0) return;
  if (d.failure > 0 || d.kv > 0 || d.reserve > 0 || d.nowait > 0) watch_thread_exit(t);
  count_scopes(d);
}

allocscope_cookie_t make_cookie(Flags bits, uint32_t depth, bool clear) {
  return static_cast<allocscope_cookie_t>(bits) |
         (static_cast<allocscope_cookie_t>(depth) << 32) | (clear ? kClearBit : 0);
}

void misuse(const char *what) {
  stats::bump(stats::g_counters.misuse);
  report("%s; thread %d", what, static_cast<int>(gettid()));
  if (g_config.strict.load()) abort();
}

}  // namespace

allocscope_cookie_t scope_save(Flags flags, const void *callsite) {
  ThreadState &t = t_state;
  flags &= ~ALLOCSCOPE_ZERO;  // call-site only
  if ((flags & ALLOCSCOPE_NOFAIL) && (t.scope & ALLOCSCOPE_NOWAIT)) {
    stats::bump(stats::g_counters.conflicts);
    report("allocscope_save(NOFAIL) inside a NOWAIT scope at %p: NOWAIT still wins for "
           "allocations without call-site flags",
           callsite);
  }
  const Flags newly = flags & ~t.scope;
  t.scope |= flags;
  if (t.depth < kMaxDepth) ++t.depth;
  update_engaged(t);
  return make_cookie(newly, t.depth, false);
}

allocscope_cookie_t scope_clear(Flags flags) {
  ThreadState &t = t_state;
  const Flags dropped = flags & t.scope;
  t.scope &= ~flags;
  if (t.depth < kMaxDepth) ++t.depth;
  update_engaged(t);
  return make_cookie(dropped, t.depth, true);
}

void scope_restore(allocscope_cookie_t cookie) {
  ThreadState &t = t_state;
  const uint32_t depth = static_cast<uint32_t>(cookie >> 32) & kMaxDepth;
  const Flags bits = static_cast<Flags>(cookie);
  if (depth == 0) {
    misuse("allocscope_restore: not a cookie from allocscope_save or allocscope_clear");
    return;
  }
  if (depth != t.depth) {
    char what[160];
    snprintf(what, sizeof(what),
             "allocscope_restore out of order: the cookie is for depth %u, the thread is at "
             "depth %u (restores must be LIFO)",
             depth, t.depth);
    misuse(what);
  }
  if (cookie & kClearBit)
    t.scope |= bits;
  else
    t.scope &= ~bits;
  t.depth = depth - 1;
  update_engaged(t);
}

}  // namespace allocscope
