// engine.cc: see engine.h. The retry loop follows the kernel's slow path: try, and on
// failure let the resolved contract decide between giving up, reclaiming, backing off
// (memalloc_retry_wait's 1 ms, growing to 100 ms for NOFAIL) and waiting for frees.
#include "engine.h"
#include "leak_track.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>

#include "atomic_reserve.h"
#include "backend.h"
#include "backtrace.h"
#include "budget.h"
#include "counters.h"
#include "event_hook.h"
#include "failure_sites.h"
#include "fault.h"
#include "gate.h"
#include "hash.h"
#include "options.h"
#include "reclaim.h"
#include "region.h"
#include "report.h"
#include "reserve.h"
#include "resolve.h"
#include "rules.h"
#include "sys.h"
#include "thread_state.h"

namespace allocscope {

Policy thread_policy(const ThreadState &t, Flags call, const void *callsite) {
  return resolve(t.scope.flags | rules::flags_for(callsite), call,
                 g_config.policy.load(std::memory_order_relaxed),
                 g_config.nofail_in_nowait.load(std::memory_order_relaxed));
}

namespace {

constexpr uint64_t kMs = sys::kNsPerMs;
using sys::now_ns;

// Failure and stall reports: at most warn_burst (10) every 5 seconds, as the kernel's
// warn_alloc.
bool report_allowed() {
  const unsigned burst = g_config.warn_burst.load(std::memory_order_relaxed);
  static std::atomic<uint64_t> window_start{0};
  static std::atomic<int> in_window{0};
  const uint64_t now = now_ns();
  uint64_t start = window_start.load(std::memory_order_relaxed);
  if (now - start > 5000 * kMs && window_start.compare_exchange_strong(start, now))
    in_window.store(0);
  if (burst == 0 || in_window.fetch_add(1) < static_cast<int>(burst)) {
    stats::bump(stats::g_counters.reports);
    return true;
  }
  stats::bump(stats::g_counters.reports_suppressed);
  return false;
}

// Call sites already reported for a NOFAIL/NOWAIT conflict (once per site). A full
// table reports again rather than lose a report.
bool first_time_at(const void *callsite) {
  static std::atomic<uintptr_t> seen[512];
  const uintptr_t key = reinterpret_cast<uintptr_t>(callsite) | 1;
  size_t slot = fibonacci_slot(key, 9);
  for (int probe = 0; probe < 16; ++probe, slot = (slot + 1) % 512) {
    uintptr_t current = seen[slot].load(std::memory_order_relaxed);
    if (current == key) return false;
    if (current == 0 && seen[slot].compare_exchange_strong(current, key)) return true;
    if (current == key) return false;
  }
  return true;
}

const char *where(char *buf, size_t len) {
  void *frames[kMaxFrames];
  const int n = capture_backtrace(frames, kMaxFrames);
  return format_backtrace(frames, n, buf, len);
}

void *attempt(const Request &r) {
  // jemalloc's malloc has a fast path its mallocx lacks: use it for plain requests.
  if (r.old == nullptr && r.align == 0 && r.jemalloc_flags == 0 && !(r.call & ALLOCSCOPE_ZERO))
    return je_malloc(r.size);
  int flags = r.jemalloc_flags;
  if (r.align != 0) flags |= MALLOCX_ALIGN(r.align);
  if (r.call & ALLOCSCOPE_ZERO) flags |= MALLOCX_ZERO;
  const size_t size = r.size != 0 ? r.size : 1;  // size 0 is undefined for *allocx
  return r.old != nullptr ? je_rallocx(r.old, size, flags) : je_mallocx(size, flags);
}

// What the allocation adds to the thread's net bytes: all of it, or a realloc's growth.
size_t growth(const Request &r) {
  if (r.old == nullptr) return r.size;
  const size_t old = je_sallocx(r.old, 0);
  return r.size > old ? r.size - old : 0;
}

// kAtomicReserve: a NOWAIT allocation the atomic reserve's arena could not serve;
// kReserveMemory: allocscope_reserve() could not get its premapped memory. Their reports
// say what ran out or was refused, which "jemalloc could not map memory" would hide.
enum class Reason {
  kLimit, kBackend, kRegion, kRegionThenArena, kSizeCap, kAboveLimit, kInjected,
  kAtomicReserve, kReserveMemory
};

void report_failure(const Request &r, const Policy &p, Reason why, unsigned passes) {
  char flags[256], stack[2048], cause[400];
  switch (why) {
    case Reason::kLimit:
      if (budget::arena_limit() != 0)
        snprintf(cause, sizeof(cause),
                 "limit %zu or arena_limit %zu reached (charged %zu, of it the arena %zu, "
                 "emergency %zu)",
                 budget::limit(), budget::arena_limit(), budget::charged(),
                 budget::arena_share(), budget::emergency());
      else
        snprintf(cause, sizeof(cause), "limit %zu reached (charged %zu, emergency %zu)",
                 budget::limit(), budget::charged(), budget::emergency());
      break;
    case Reason::kBackend:
      snprintf(cause, sizeof(cause), "jemalloc could not map memory");
      break;
    case Reason::kRegion:
      snprintf(cause, sizeof(cause), "the region could not grow (window full, "
                                     "vm.max_map_count or mremap refused)");
      break;
    case Reason::kRegionThenArena:
      snprintf(cause, sizeof(cause), "no region could be mapped (window full, vm.max_map_count "
                                     "or mmap refused), nor could jemalloc map memory");
      break;
    case Reason::kSizeCap:
      snprintf(cause, sizeof(cause), "size above max_size %zu", g_config.max_size.load());
      break;
    case Reason::kAboveLimit:
      snprintf(cause, sizeof(cause), "larger than the whole limit %zu, so it can never fit",
               budget::limit());
      break;
    case Reason::kInjected:
      snprintf(cause, sizeof(cause), "fault injected");
      break;
    case Reason::kAtomicReserve:
      atomic_reserve::describe_failure(cause, sizeof(cause), r.size);
      break;
    case Reason::kReserveMemory:
      reserve::describe_failure(cause, sizeof(cause));
      break;
  }
  report("%s(%zu) failed: %s; policy %s, flags %s, %u reclaim pass%s; thread %d; at %s",
         r.name, r.size, cause, contract_name(p.contract),
         format_flags(p.flags, flags, sizeof(flags)), passes, passes == 1 ? "" : "es",
         static_cast<int>(gettid()), where(stack, sizeof(stack)));
}

void handle_conflict(const Request &r) {
  stats::bump(stats::g_counters.conflicts);
  const ConflictAction action = g_config.nofail_in_nowait.load(std::memory_order_relaxed);
  if (first_time_at(r.callsite)) {
    char stack[2048];
    report("%s(%zu): call-site NOFAIL inside a NOWAIT scope (a caller bug); "
           "nofail_in_nowait:%s; thread %d; at %s",
           r.name, r.size,
           action == ConflictAction::kWait ? "wait" : action == ConflictAction::kFail ? "fail"
                                                                                   : "abort",
           static_cast<int>(gettid()), where(stack, sizeof(stack)));
  }
  if (action == ConflictAction::kAbort) abort();
}

// The policy one request follows: the resolution table, its conflict report, and the
// NOFAIL demotion above nofail_max.
Policy policy_for(const Request &r, const ThreadState &t) {
  Policy pol = thread_policy(t, r.call, r.callsite);
  if (pol.conflict) handle_conflict(r);
  if (pol.contract == Contract::kNofail &&
      r.size > g_config.nofail_max.load(std::memory_order_relaxed)) {
    stats::bump(stats::g_counters.nofail_demotions);
    if (report_allowed())
      report("%s(%zu): NOFAIL above nofail_max %zu, demoted to retry_mayfail", r.name,
             r.size, g_config.nofail_max.load());
    pol.contract = Contract::kRetryMayfail;
  }
  return pol;
}

// A NOFAIL allocation between two attempts: waits for memory with a growing back-off
// (1 ms doubling to 100 ms), reports a stall every stall_warn_ms, and says when
// nofail_overdraw_ms allows it to exceed the limit.
class NofailWait {
 public:
  NofailWait(const Request &r, stats::PolicyCounters &counters) : r_(r), counters_(counters) {}

  // Returns true once the allocation may overdraw the limit.
  bool wait(Reason why, bool limited) {
    const bool on_limit = limited && why == Reason::kLimit;
    // No free can come: every other thread the budget knows waits as well (or there is
    // none, as in a fork child). Waiting would be forever: NOFAIL wins over the limit.
    if (on_limit && !overdraw_ && !budget::others_can_free())
      return start_overdraw("no other thread can free memory");
    const uint64_t now = now_ns();
    if (started_ == 0) started_ = now;
    const uint64_t waited_ms = (now - started_) / kMs;
    if (limited && why == Reason::kLimit)
      budget::wait_for_free(backoff_ns_);  // a free wakes it early
    else
      sys::sleep_ns(backoff_ns_);
    backoff_ns_ = backoff_ns_ * 2 > 100 * kMs ? 100 * kMs : backoff_ns_ * 2;
    stats::bump(counters_.waits);
    stats::bump(counters_.wait_ns, now_ns() - now);
    report_stall(why, waited_ms);
    return on_limit && may_overdraw(waited_ms);
  }

 private:
  void report_stall(Reason why, uint64_t waited_ms) {
    const uint64_t every_ms = g_config.stall_warn_ms.load(std::memory_order_relaxed);
    if (every_ms == 0 || waited_ms < (stalls_ + 1) * every_ms) return;
    ++stalls_;
    stats::bump(counters_.stalls);
    char stack[2048];
    if (report_allowed())
      report("%s(%zu): NOFAIL stalled for %llu ms (%s); thread %d; at %s", r_.name, r_.size,
             static_cast<unsigned long long>(waited_ms),
             why == Reason::kLimit ? "memory limit reached" : "jemalloc cannot map memory",
             static_cast<int>(gettid()), where(stack, sizeof(stack)));
  }

  bool may_overdraw(uint64_t waited_ms) {
    const uint64_t after_ms = g_config.nofail_overdraw_ms.load(std::memory_order_relaxed);
    if (overdraw_ || after_ms == 0 || waited_ms < after_ms) return overdraw_;
    char why[96];
    snprintf(why, sizeof(why), "stalled %llu ms (nofail_overdraw_ms:%llu)",
             static_cast<unsigned long long>(waited_ms), static_cast<unsigned long long>(after_ms));
    return start_overdraw(why);
  }

  // From now on this allocation, and every NOFAIL one after it until the charge is back
  // under the limit, may exceed the limit (budget.h: overdrawing): the wait is paid once.
  bool start_overdraw(const char *why) {
    overdraw_ = true;
    stats::bump(counters_.overdraws);
    budget::start_overdrawing();
    if (report_allowed())
      report("%s(%zu): NOFAIL on the limit: %s; overdrawing it until the charge is back "
             "under the limit",
             r_.name, r_.size, why);
    return true;
  }

  const Request &r_;
  stats::PolicyCounters &counters_;
  uint64_t started_ = 0;
  uint64_t backoff_ns_ = kMs;
  uint64_t stalls_ = 0;
  bool overdraw_ = false;
};

// One try at an allocation, whatever it is (a jemalloc block, a new region, a region
// resize): charges the budget, allocates, and on failure says why.
struct Try {
  virtual void *once(bool memalloc, bool overdraw, Reason *why) = 0;
  // The reclaim pass purges jemalloc only when jemalloc itself failed.
  virtual bool backend_is_jemalloc() const { return true; }
};

struct ArenaTry : Try {
  explicit ArenaTry(const Request &request, Reason backend = Reason::kBackend)
      : r(request), backend(backend) {}
  void *once(bool memalloc, bool overdraw, Reason *why) override {
    if (gate::limit_is_set() && !budget::try_charge(t_state, growth(r), memalloc, overdraw)) {
      *why = Reason::kLimit;
      return nullptr;
    }
    *why = backend;
    void *p = attempt(r);
    // The atomic reserve's arena was refused a block it cannot do without: one refill for
    // it and one more try, rather than failing with the memory in reach (atomic_reserve.h).
    if (p == nullptr && backend == Reason::kAtomicReserve && atomic_reserve::refill_for_refused())
      p = attempt(r);
    return p;
  }
  const Request &r;
  const Reason backend;  // what a jemalloc failure means (kAtomicReserve: that arena's)
};

struct RegionTry : Try {
  // resize: the region to resize, or nullptr for a new one.
  RegionTry(const Request &request, void *resize) : r(request), resize(resize) {}
  void *once(bool memalloc, bool overdraw, Reason *why) override {
    const size_t old = resize != nullptr ? region::usable_size(resize) : 0;
    const size_t want = sys::page_round(r.size);
    const size_t more = want > old ? want - old : 0;
    if (!budget::charge_outside(more, memalloc, overdraw)) {
      *why = Reason::kLimit;
      return nullptr;
    }
    *why = Reason::kRegion;
    void *p = resize != nullptr ? region::grow(resize, r.size)
                                : region::allocate(r.size, r.align, r.call & ALLOCSCOPE_ZERO);
    if (p == nullptr) {
      budget::uncharge_outside(more);
      return resize == nullptr ? arena_instead(memalloc, overdraw, why) : nullptr;
    }
    gate::change(gate::kRegions, 0);
    if (want < old) budget::uncharge_outside(old - want);  // a shrink
    // A failure check's leak count: regions are outside jemalloc's per-thread counters.
    fault::count_region_bytes(t_state, static_cast<int64_t>(want) - static_cast<int64_t>(old));
    return p;
  }
  bool backend_is_jemalloc() const override { return false; }

  // No new region could be made: kv's arena attempt was light (and arena_limit may have
  // refused it), but a block the arena can give beats a failure, as vmalloc failing
  // does not make kmalloc's memory unusable. A region that cannot grow stays as it is.
  void *arena_instead(bool memalloc, bool overdraw, Reason *why) {
    if (gate::limit_is_set() && !budget::try_charge(t_state, r.size, memalloc, overdraw)) {
      *why = Reason::kLimit;
      return nullptr;
    }
    void *p = attempt(r);
    if (p != nullptr) stats::bump(stats::g_counters.kv.arena_instead);
    *why = Reason::kRegionThenArena;
    return p;
  }

  const Request &r;
  void *resize;
};

// allocscope_reserve(): premapped memory for the reserve, then its charge. Returns a
// non-null token on success (there is no block).
struct ReserveTry : Try {
  explicit ReserveTry(size_t bytes) : bytes(bytes) {}
  void *once(bool memalloc, bool overdraw, Reason *why) override {
    *why = Reason::kReserveMemory;
    if (!reserve::provide(bytes)) return nullptr;
    if (!budget::charge_reserve(t_state, bytes, memalloc, overdraw)) {
      reserve::unprovide(bytes);
      *why = Reason::kLimit;
      return nullptr;
    }
    reserve::grant(t_state, bytes);
    return this;
  }
  bool backend_is_jemalloc() const override { return false; }
  size_t bytes;
};

// The retry loop: tries, and on failure lets the resolved contract decide between giving
// up, reclaiming, backing off and waiting for frees.
void *with_policy(const Request &r, const Policy &pol, stats::PolicyCounters &counters,
                  Try &attempt_once, bool warn) {
  const bool memalloc = (pol.flags & ALLOCSCOPE_MEMALLOC) && !(pol.flags & ALLOCSCOPE_NOMEMALLOC);
  // Once a NOFAIL allocation overdrew the limit, the next ones do too without waiting,
  // until the charge is back under it.
  bool overdraw = pol.contract == Contract::kNofail && budget::overdrawing();
  unsigned passes = 0, without_progress = 0;
  NofailWait nofail(r, counters);
  Reason why;
  for (;;) {
    void *p = attempt_once.once(memalloc, overdraw, &why);
    if (p != nullptr) return p;

    // The allocation failed: the contract decides what happens next.
    if (pol.contract == Contract::kNowait) break;
    if ((pol.contract == Contract::kNormal || pol.contract == Contract::kNoretry) && passes == 1)
      break;
    const bool purge = (why == Reason::kBackend && attempt_once.backend_is_jemalloc()) ||
                       why == Reason::kRegionThenArena;
    const size_t freed = reclaim::run_pass(r.size, pol.flags, purge);
    ++passes;
    stats::bump(counters.reclaim_passes);
    stats::bump(counters.reclaimed_bytes, freed);
    stats::bump(counters.retries);
    if (freed != 0) {
      without_progress = 0;
    } else if (pol.contract == Contract::kRetryMayfail) {
      if (++without_progress >= g_config.retry_max.load(std::memory_order_relaxed)) break;
      sys::sleep_ns(kMs);  // memalloc_retry_wait's back-off for a caller that already reclaimed
    } else if (pol.contract == Contract::kNofail) {
      overdraw = nofail.wait(why, gate::limit_is_set());
    }
  }

  stats::bump(counters.failures);
  failure_sites::record(r.callsite, pol.contract);
  if (warn && report_allowed()) report_failure(r, pol, why, passes);
  event_hook::fire();  // a failure is a point of the timeline, and a moment to poll the live page
  errno = ENOMEM;
  return nullptr;
}

// kvmalloc's first step: a light jemalloc attempt (no reclaim, no report, no waiting, no
// emergency allowance, NOFAIL ignored) that also fails when the arena's share of the
// budget would pass arena_limit. For a realloc it may only grow the block in place.
void *light_arena_attempt(const Request &r) {
  const size_t more = growth(r);
  if (gate::limit_is_set() && !budget::try_charge(t_state, more, false, false)) return nullptr;
  if (r.old == nullptr) return attempt(r);
  return je_xallocx(r.old, r.size, 0, r.jemalloc_flags) >= r.size ? r.old : nullptr;
}

// realloc across kinds (arena <-> region): the new block comes from `target` under the
// policy, then the contents move and the old block goes.
void *move_block(const Request &r, const Policy &pol, stats::PolicyCounters &counters,
                 Try &target, bool warn) {
  void *p = with_policy(r, pol, counters, target, warn);
  if (p == nullptr) return nullptr;
  const size_t old = usable_size(r.old);
  memcpy(p, r.old, old < r.size ? old : r.size);
  release(r.old);
  return p;
}

// A RESERVE allocation served by the thread's reserve, or nullptr (none, exhausted, a
// region or a shrink: those follow the policy). A growing realloc moves the block.
void *from_reserve(ThreadState &t, const Request &r) {
  int flags = r.jemalloc_flags;
  if (r.align != 0) flags |= MALLOCX_ALIGN(r.align);
  if (r.call & ALLOCSCOPE_ZERO) flags |= MALLOCX_ZERO;
  if (r.old == nullptr) return reserve::take(t, r.size, flags, r.name);
  if (region::contains(r.old)) return nullptr;
  const size_t old = je_sallocx(r.old, 0);
  if (r.size <= old) return nullptr;
  void *p = reserve::take(t, r.size, flags, r.name);
  if (p == nullptr) return nullptr;
  memcpy(p, r.old, old);
  release(r.old);
  return p;
}

// jemalloc flags that name an arena: the caller's choice is kept.
constexpr int kArenaFlags = ~((1 << 20) - 1);

}  // namespace


namespace {

// One allocate() call, as a sequence of named steps (run() reads top to bottom). Each step
// either serves the request, fails it, or leaves it to the next.
class Allocation {
 public:
  Allocation(const Request &request, const Policy &policy)
      : r_(request),
        pol_(policy),
        counters_(stats::of(pol_.contract)),
        warn_(!(pol_.flags & ALLOCSCOPE_NOWARN) && g_config.warn.load()) {}

  void *run() {
    if (void *p = from_thread_reserve()) return p;
    route_nowait_to_atomic_reserve();
    // A size no memory can back (max_size), or that can never fit under the limit, fails
    // at once, whatever the policy: waiting or retrying could not help. With nothing
    // engaged it is jemalloc's own failure as far as the program can tell: no report.
    if (above_max_size()) return fail_at_once(Reason::kSizeCap, gate::bits() != 0);
    if (above_whole_limit()) return fail_at_once(Reason::kAboveLimit, true);
    kv_ = (pol_.flags & ALLOCSCOPE_KV) && r_.size >= threshold() && !from_atomic_reserve_;
    injected_ = fault_injected();
    // An injected failure fails the allocation at once; in kv it fails the arena attempt,
    // which is what sends kv to a region.
    if (injected_ && !kv_) return fail_at_once(Reason::kInjected, false);
    if (void *p = before_policy()) return p;
    stats::bump(counters_.attempts);
    if (r_.old != nullptr && region::contains(r_.old)) return resize_region();
    if (!kv_) {
      ArenaTry arena(r_, from_atomic_reserve_ ? Reason::kAtomicReserve : Reason::kBackend);
      return with_policy(r_, pol_, counters_, arena, warn_);
    }
    return kv();
  }

 private:
  size_t threshold() const { return g_config.kv_threshold.load(std::memory_order_relaxed); }

  // A RESERVE allocation the thread's reserve covers cannot fail.
  void *from_thread_reserve() {
    return (pol_.flags & ALLOCSCOPE_RESERVE) ? from_reserve(t_state, r_) : nullptr;
  }

  // NOWAIT goes to the atomic reserve's arena (unless the caller named an arena); an
  // ordinary allocation refills that arena when it runs low, and a NOWAIT one when it is
  // nearly empty and nothing else did (atomic_reserve.h). A NOWAIT allocation the atomic
  // reserve serves never goes to a region (an mmap), kv or not.
  void route_nowait_to_atomic_reserve() {
    if (pol_.contract == Contract::kNowait) {
      if (!(r_.jemalloc_flags & kArenaFlags)) {
        const int flags = atomic_reserve::mallocx_flags();
        r_.jemalloc_flags |= flags;
        from_atomic_reserve_ = flags != 0;
        if (from_atomic_reserve_) atomic_reserve::before_nowait();
      }
    } else if (gate::bits() & gate::kRefill) {
      atomic_reserve::refill();
    }
  }

  bool above_max_size() const {
    return r_.size > g_config.max_size.load(std::memory_order_relaxed);
  }

  bool above_whole_limit() const {
    const size_t limit = budget::limit();
    if (limit == 0) return false;
    const bool memalloc =
        (pol_.flags & ALLOCSCOPE_MEMALLOC) && !(pol_.flags & ALLOCSCOPE_NOMEMALLOC);
    return r_.size > limit + (memalloc ? budget::emergency() : 0);
  }

  bool fault_injected() const {
    return (gate::bits() & gate::kFaults) &&
           fault::inject(r_.size, pol_.flags, pol_.contract == Contract::kNofail, r_.name,
                         r_.callsite);
  }

  void *fail_at_once(Reason why, bool reported) {
    stats::bump(counters_.attempts);
    stats::bump(counters_.failures);
    failure_sites::record(r_.callsite, pol_.contract);
    if (reported && warn_ && report_allowed()) report_failure(r_, pol_, why, 0);
    event_hook::fire();
    errno = ENOMEM;
    return nullptr;
  }

  // Nothing needs the engine before the attempt (no injection, no kv, no limit, not a
  // resize): try jemalloc as the fast path would have; the policy only matters if that
  // fails.
  void *before_policy() {
    if (injected_ || kv_ || gate::limit_is_set() || r_.old != nullptr) return nullptr;
    return attempt(r_);
  }

  // A region being resized stays a region while it is large enough, else moves to the
  // arena.
  void *resize_region() {
    if (r_.size >= threshold()) {
      RegionTry resize(r_, r_.old);
      return with_policy(r_, pol_, counters_, resize, warn_);
    }
    ArenaTry to_arena(fresh());
    return move_block(r_, pol_, counters_, to_arena, warn_);
  }

  // kv: straight to a region at kv_to_region_from and above; else the light arena
  // attempt first, and a region under the full policy when it fails.
  void *kv() {
    const size_t to_region_from = g_config.kv_to_region_from.load(std::memory_order_relaxed);
    if (to_region_from != 0 && r_.size >= to_region_from) {
      stats::bump(stats::g_counters.kv.to_region);
    } else {
      if (void *p = injected_ ? nullptr : light_arena_attempt(r_)) return p;
      stats::bump(stats::g_counters.kv.fallbacks);
    }
    RegionTry to_region(fresh(), nullptr);
    if (r_.old == nullptr) return with_policy(r_, pol_, counters_, to_region, warn_);
    return move_block(r_, pol_, counters_, to_region, warn_);
  }

  // The same request for a new block, when a realloc moves.
  const Request &fresh() {
    fresh_ = r_;
    fresh_.old = nullptr;
    return fresh_;
  }

  Request r_;
  Request fresh_ = r_;
  const Policy pol_;
  stats::PolicyCounters &counters_;
  const bool warn_;
  bool from_atomic_reserve_ = false;
  bool kv_ = false;
  bool injected_ = false;
};

}  // namespace

void *allocate(const Request &request) {
  ThreadState &t = t_state;
  if (t.in_engine != 0) {  // allocscope's own allocation: no policy, no accounting
    void *p = attempt(request);
    if (p == nullptr) errno = ENOMEM;
    return p;
  }
  EngineGuard guard;
  void *p = Allocation(request, policy_for(request, t)).run();
  if (AS_UNLIKELY(gate::bits() & gate::kLeakTrack) && p != nullptr) {
    if (request.old != nullptr) leak_track::freed(request.old);  // moved or resized
    leak_track::allocated(p);
  }
  if (AS_UNLIKELY(gate::bits() & gate::kExiting)) {
    if (t.budget.exiting) budget::exiting_sync(t);
    budget::reap_exited();
  }
  return p;
}

int make_reserve(size_t bytes) {
  ThreadState &t = t_state;
  EngineGuard guard;
  const Request r("allocscope_reserve", bytes, __builtin_return_address(0));
  if (bytes == 0) return 0;
  if (bytes > reserve::room()) {
    stats::bump(stats::g_counters.misuse);
    report("allocscope_reserve(%zu): larger than reserves can hold (%zu bytes more at "
           "most); nothing reserved; thread %d",
           bytes, reserve::room(), static_cast<int>(gettid()));
    return ENOMEM;
  }
  const Policy pol = policy_for(r, t);
  stats::PolicyCounters &counters = stats::of(pol.contract);
  stats::bump(counters.attempts);
  ReserveTry attempt_reserve(bytes);
  const bool warn = !(pol.flags & ALLOCSCOPE_NOWARN) && g_config.warn.load();
  return with_policy(r, pol, counters, attempt_reserve, warn) != nullptr ? 0 : ENOMEM;
}

namespace {

// What a free owes the budget beyond jemalloc's count: waking NOFAIL waiters, and while
// threads are exiting, charging this one's free (if it is one) and forgetting those gone.
void after_free(ThreadState &t) {
  if (AS_UNLIKELY(gate::bits() & gate::kExiting)) {
    if (t.budget.exiting) budget::exiting_sync(t);
    budget::reap_exited();
  }
  budget::wake_waiters();
}

}  // namespace

void release(void *p, int jemalloc_flags) noexcept {
  if (AS_UNLIKELY(gate::bits() & gate::kLeakTrack)) leak_track::freed(p);
  if (region::contains(p)) {
    const size_t bytes = region::usable_size(p);
    if (region::release(p)) {
      budget::uncharge_outside(bytes);
      fault::count_region_bytes(t_state, -static_cast<int64_t>(bytes));
    } else {
      report(region::in_free_space(p)
                 ? "free(%p): no region starts there any more (freed twice?); ignored"
                 : "free(%p): inside a region but not its start; ignored",
             p);
    }
    return;
  }
  ThreadState &t = t_state;
  if (gate::limit_is_set()) budget::ensure_joined(t);
  if (jemalloc_flags == 0)
    je_free(p);
  else if (p != nullptr)
    je_dallocx(p, jemalloc_flags);
  after_free(t);
}

void release_sized(void *p, size_t size, int jemalloc_flags) noexcept {
  if (region::contains(p)) return release(p, 0);  // (which forgets it for leak_track)
  if (AS_UNLIKELY(gate::bits() & gate::kLeakTrack)) leak_track::freed(p);
  ThreadState &t = t_state;
  if (gate::limit_is_set()) budget::ensure_joined(t);
  je_sdallocx(p, size, jemalloc_flags);
  after_free(t);
}

size_t resize_in_place(void *p, size_t size, size_t extra, int jemalloc_flags) {
  if (region::contains(p)) return region::usable_size(p);
  ThreadState &t = t_state;
  if (gate::limit_is_set() && t.in_engine == 0) {
    const size_t old = je_sallocx(p, jemalloc_flags);
    if (size > old && !budget::try_charge(t, size - old, false, false)) return old;
    return je_xallocx(p, size, 0, jemalloc_flags);
  }
  return je_xallocx(p, size, extra, jemalloc_flags);
}

}  // namespace allocscope
