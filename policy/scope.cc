// scope.cc: see scope.h.
#include "scope.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "counters.h"
#include "gate.h"
#include "hash.h"
#include "options.h"
#include "report.h"

namespace allocscope {
namespace scope {
namespace {

// A cookie: the flag bits its call changed (0-31), the depth it created (32-46), the
// thread's tag (47-62), clear or save (63). The tag makes a garbage value, or another
// thread's cookie, fail to restore (1 in 32768 garbage values pass, against 1 in 2 when
// only the depth was checked).
constexpr allocscope_cookie_t kClearBit = 1ull << 63;
constexpr int kDepthShift = 32, kTagShift = 47;
constexpr uint32_t kMaxDepth = 0x7fff;
constexpr uint32_t kTagMask = 0xffff;

// The thread's tag: nonzero, from its id, made on its first save or clear.
uint32_t tag_of(ScopeThread &s) {
  if (s.tag == 0) s.tag = (fibonacci_slot(static_cast<uint64_t>(gettid()), 16) | 1) & kTagMask;
  return s.tag;
}

// +1, -1 or 0 as a thread's scope gains, loses or keeps a property.
int delta(bool now, bool &before) {
  const int d = now == before ? 0 : now ? 1 : -1;
  before = now;
  return d;
}

// A scope that changes what happens on failure sends failures to the engine (for all
// threads, see gate::kOnFailure); successes stay on the fast path. A KV scope engages
// reallocs (gate::kKv); RESERVE and NOWAIT scopes may be served by the thread's reserve
// or the atomic reserve. Only a change of the thread's state touches the shared counts.
void count_in_gate(ThreadState &t) {
  ScopeThread &s = t.scope;
  gate::ScopeDeltas d;
  d.failure = delta(s.flags & (ALLOCSCOPE_NOFAIL | ALLOCSCOPE_RETRY_MAYFAIL), s.failure);
  d.kv = delta(s.flags & ALLOCSCOPE_KV, s.kv);
  d.reserve = delta(s.flags & ALLOCSCOPE_RESERVE, s.reserve);
  d.nowait = delta(s.flags & ALLOCSCOPE_NOWAIT, s.nowait);
  if (d.failure == 0 && d.kv == 0 && d.reserve == 0 && d.nowait == 0) return;
  if (d.failure > 0 || d.kv > 0 || d.reserve > 0 || d.nowait > 0) watch_thread_exit(t);
  gate::count_scopes(d);
}

allocscope_cookie_t make_cookie(ScopeThread &s, Flags bits, bool clear) {
  return static_cast<allocscope_cookie_t>(bits) |
         (static_cast<allocscope_cookie_t>(s.depth) << kDepthShift) |
         (static_cast<allocscope_cookie_t>(tag_of(s)) << kTagShift) | (clear ? kClearBit : 0);
}

void misuse(const char *what) {
  stats::bump(stats::g_counters.misuse);
  report("%s; thread %d", what, static_cast<int>(gettid()));
  if (g_config.strict.load()) abort();
}

}  // namespace

allocscope_cookie_t save(Flags flags, const void *callsite) {
  ThreadState &t = t_state;
  flags &= ~ALLOCSCOPE_ZERO;  // call-site only
  if ((flags & ALLOCSCOPE_NOFAIL) && (t.scope.flags & ALLOCSCOPE_NOWAIT)) {
    stats::bump(stats::g_counters.conflicts);
    report("allocscope_save(NOFAIL) inside a NOWAIT scope at %p: NOWAIT still wins for "
           "allocations without call-site flags",
           callsite);
  }
  ScopeThread &s = t.scope;
  const Flags newly = flags & ~s.flags;
  s.flags |= flags;
  if (s.depth < kMaxDepth) ++s.depth;
  count_in_gate(t);
  return make_cookie(s, newly, false);
}

allocscope_cookie_t clear(Flags flags) {
  ThreadState &t = t_state;
  ScopeThread &s = t.scope;
  const Flags dropped = flags & s.flags;
  s.flags &= ~flags;
  if (s.depth < kMaxDepth) ++s.depth;
  count_in_gate(t);
  return make_cookie(s, dropped, true);
}

void restore(allocscope_cookie_t cookie) {
  ThreadState &t = t_state;
  ScopeThread &s = t.scope;
  const uint32_t depth = static_cast<uint32_t>(cookie >> kDepthShift) & kMaxDepth;
  const uint32_t tag = static_cast<uint32_t>(cookie >> kTagShift) & kTagMask;
  const Flags bits = static_cast<Flags>(cookie);
  if (depth == 0 || tag != tag_of(s)) {
    misuse("allocscope_restore: not a cookie from this thread's allocscope_save or "
           "allocscope_clear; ignored");
    return;
  }
  if (depth != s.depth) {
    char what[160];
    snprintf(what, sizeof(what),
             "allocscope_restore out of order: the cookie is for depth %u, the thread is at "
             "depth %u (restores must be LIFO)",
             depth, s.depth);
    misuse(what);
  }
  if (cookie & kClearBit)
    s.flags |= bits;
  else
    s.flags &= ~bits;
  s.depth = depth - 1;
  count_in_gate(t);
}

void thread_exit(ThreadState &t) {
  // Scopes left open: their counts would keep the fast path engaged for good.
  ScopeThread &s = t.scope;
  const gate::ScopeDeltas open{-int{s.failure}, -int{s.kv}, -int{s.reserve}, -int{s.nowait}};
  s.failure = s.kv = s.reserve = s.nowait = false;
  if (open.failure != 0 || open.kv != 0 || open.reserve != 0 || open.nowait != 0)
    gate::count_scopes(open);
}

}  // namespace scope
}  // namespace allocscope
