// engine.cc: see engine.h. The retry loop follows the kernel's slow path: try, and on
// failure let the resolved contract decide between giving up, reclaiming, backing off
// (memalloc_retry_wait's 1 ms, growing to 100 ms for NOFAIL) and waiting for frees.
#include "engine.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "atomic_reserve.h"
#include "backend.h"
#include "backtrace.h"
#include "budget.h"
#include "config.h"
#include "fault.h"
#include "reclaim.h"
#include "rules.h"
#include "region.h"
#include "report.h"
#include "reserve.h"
#include "resolve.h"
#include "stats.h"
#include "thread_state.h"

namespace allocscope {

__thread ThreadState t_state __attribute__((tls_model("initial-exec")));
EntryGate g_gate;

void change_engaged(uint32_t set, uint32_t clear) {
  std::atomic<uint32_t> &engaged = g_gate.engaged;
  uint32_t bits = engaged.load();
  do {
    // Nothing to change: the gate already is, or is being, published for these bits.
    if (((bits | set) & ~clear) == bits) return;
  } while (!engaged.compare_exchange_weak(bits, (bits | set) & ~clear));
  // Publish the gate for the bits now in force. Another thread changing them meanwhile
  // publishes its own; whichever store comes last, the loop makes it match the last
  // change: a store is only final once the bits are seen unchanged after it.
  for (;;) {
    bits = engaged.load();
    g_gate.direct_max.store(direct_max_for(bits));
    g_gate.new_direct_max.store(new_direct_max_for(bits));
    if (engaged.load() == bits) break;
  }
}

namespace {

constexpr uint64_t kMs = 1000000;

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

void sleep_ns(uint64_t ns) {
  timespec ts{static_cast<time_t>(ns / 1000000000u), static_cast<long>(ns % 1000000000u)};
  nanosleep(&ts, nullptr);
}

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
  size_t slot = (key >> 4) * 0x9E3779B97F4A7C15ull >> 55;
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

enum class Reason { kLimit, kBackend, kRegion, kRegionThenArena, kSizeCap };

void report_failure(const Request &r, const Policy &p, Reason why, unsigned passes) {
  char flags[256], stack[2048], cause[160];
  switch (why) {
    case Reason::kLimit:
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

void prefork() {
  config_prefork();
  reclaim::prefork();
  reserve::prefork();
  atomic_reserve::prefork();
  budget::prefork();
  region::prefork();
}
void postfork_parent() {
  region::postfork_parent();
  atomic_reserve::postfork();
  reserve::postfork();
  budget::postfork_parent();
  reclaim::postfork_parent();
  config_postfork();
}
void postfork_child() {
  region::postfork_child();
  atomic_reserve::postfork();
  reserve::postfork();
  budget::postfork_child();
  reclaim::postfork_child();
  config_postfork();
}

// The policy one request follows: the resolution table, its conflict report, and the
// NOFAIL demotion above nofail_max.
Policy policy_for(const Request &r, const ThreadState &t) {
  const Flags scope = t.scope | rules::flags_for(r.callsite);
  Policy pol = resolve(scope, r.call, g_config.policy.load(std::memory_order_relaxed),
                       g_config.nofail_in_nowait.load(std::memory_order_relaxed));
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
    const uint64_t now = now_ns();
    if (started_ == 0) started_ = now;
    const uint64_t waited_ms = (now - started_) / kMs;
    if (limited && why == Reason::kLimit)
      budget::wait_for_free(backoff_ns_);  // a free wakes it early
    else
      sleep_ns(backoff_ns_);
    backoff_ns_ = backoff_ns_ * 2 > 100 * kMs ? 100 * kMs : backoff_ns_ * 2;
    stats::bump(counters_.waits);
    stats::bump(counters_.wait_ns, now_ns() - now);
    report_stall(why, waited_ms);
    return why == Reason::kLimit && may_overdraw(waited_ms);
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
    overdraw_ = true;
    stats::bump(counters_.overdraws);
    if (report_allowed())
      report("%s(%zu): NOFAIL stalled %llu ms on the limit; overdrawing it "
             "(nofail_overdraw_ms:%llu)",
             r_.name, r_.size, static_cast<unsigned long long>(waited_ms),
             static_cast<unsigned long long>(after_ms));
    return true;
  }

  const Request &r_;
  stats::PolicyCounters &counters_;
  uint64_t started_ = 0;
  uint64_t backoff_ns_ = kMs;
  uint64_t stalls_ = 0;
  bool overdraw_ = false;
};

constexpr size_t kPage = 4096;
size_t page_round(size_t n) {
  return n > SIZE_MAX - (kPage - 1) ? SIZE_MAX : (n + kPage - 1) & ~(kPage - 1);
}

// One try at an allocation, whatever it is (a jemalloc block, a new region, a region
// resize): charges the budget, allocates, and on failure says why.
struct Try {
  virtual void *once(bool memalloc, bool overdraw, Reason *why) = 0;
  // The reclaim pass purges jemalloc only when jemalloc itself failed.
  virtual bool backend_is_jemalloc() const { return true; }
};

struct ArenaTry : Try {
  explicit ArenaTry(const Request &request) : r(request) {}
  void *once(bool memalloc, bool overdraw, Reason *why) override {
    if (limit_is_set() && !budget::try_charge(t_state, growth(r), memalloc, overdraw)) {
      *why = Reason::kLimit;
      return nullptr;
    }
    *why = Reason::kBackend;
    return attempt(r);
  }
  const Request &r;
};

struct RegionTry : Try {
  // resize: the region to resize, or nullptr for a new one.
  RegionTry(const Request &request, void *resize) : r(request), resize(resize) {}
  void *once(bool memalloc, bool overdraw, Reason *why) override {
    const size_t old = resize != nullptr ? region::usable_size(resize) : 0;
    const size_t want = page_round(r.size);
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
    change_engaged(kEngagedRegions, 0);
    if (want < old) budget::uncharge_outside(old - want);  // a shrink
    return p;
  }
  bool backend_is_jemalloc() const override { return false; }

  // No new region could be made: kv's arena attempt was light (and arena_limit may have
  // refused it), but a block the arena can give beats a failure, as vmalloc failing
  // does not make kmalloc's memory unusable. A region that cannot grow stays as it is.
  void *arena_instead(bool memalloc, bool overdraw, Reason *why) {
    if (limit_is_set() && !budget::try_charge(t_state, r.size, memalloc, overdraw)) {
      *why = Reason::kLimit;
      return nullptr;
    }
    void *p = attempt(r);
    if (p != nullptr) stats::bump(stats::g_counters.kv_arena_instead);
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
    *why = Reason::kBackend;
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
  bool overdraw = false;
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
      sleep_ns(kMs);  // memalloc_retry_wait's back-off for a caller that already reclaimed
    } else if (pol.contract == Contract::kNofail) {
      overdraw = nofail.wait(why, limit_is_set());
    }
  }

  stats::bump(counters.failures);
  if (warn && report_allowed()) report_failure(r, pol, why, passes);
  errno = ENOMEM;
  return nullptr;
}

// kvmalloc's first step: a light jemalloc attempt (no reclaim, no report, no waiting, no
// emergency allowance, NOFAIL ignored) that also fails when the arena's share of the
// budget would pass arena_limit. For a realloc it may only grow the block in place.
void *light_arena_attempt(const Request &r) {
  const size_t more = growth(r);
  if (!budget::arena_fits(more)) return nullptr;
  if (limit_is_set() && !budget::try_charge(t_state, more, false, false)) return nullptr;
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

int make_reserve(size_t bytes) {
  ThreadState &t = t_state;
  EngineGuard guard;
  const Request r{"allocscope_reserve", bytes, 0, nullptr, 0, 0, __builtin_return_address(0)};
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

void *allocate(const Request &request) {
  ThreadState &t = t_state;
  if (t.in_engine != 0) {  // allocscope's own allocation: no policy, no accounting
    void *p = attempt(request);
    if (p == nullptr) errno = ENOMEM;
    return p;
  }
  EngineGuard guard;
  const Policy pol = policy_for(request, t);
  stats::PolicyCounters &counters = stats::of(pol.contract);
  const bool warn = !(pol.flags & ALLOCSCOPE_NOWARN) && g_config.warn.load();

  // Reserves first: a RESERVE allocation the thread's reserve covers cannot fail; NOWAIT
  // goes to the atomic reserve's arena; an ordinary one refills that when it runs low.
  if (pol.flags & ALLOCSCOPE_RESERVE)
    if (void *p = from_reserve(t, request)) return p;
  Request r = request;
  // A NOWAIT allocation the atomic reserve serves promises no system call: it never
  // goes to a region either (an mmap), kv or not.
  bool from_atomic_reserve = false;
  if (pol.contract == Contract::kNowait) {
    if (!(r.jemalloc_flags & kArenaFlags)) {
      const int reserve_flags = atomic_reserve::mallocx_flags();
      r.jemalloc_flags |= reserve_flags;
      from_atomic_reserve = reserve_flags != 0;
    }
  } else if (engaged_bits() & kEngagedRefill) {
    atomic_reserve::refill();
  }

  if (r.size > g_config.max_size.load(std::memory_order_relaxed)) {
    stats::bump(counters.attempts);
    stats::bump(counters.failures);
    if (warn && report_allowed()) report_failure(r, pol, Reason::kSizeCap, 0);
    errno = ENOMEM;
    return nullptr;
  }

  const size_t threshold = g_config.kv_threshold.load(std::memory_order_relaxed);
  const bool kv = (pol.flags & ALLOCSCOPE_KV) && r.size >= threshold && !from_atomic_reserve;
  // An injected failure fails the allocation at once; in kv it fails the arena attempt,
  // which is what sends kv to a region.
  const bool injected = (engaged_bits() & kEngagedFaults) &&
                        fault::inject(r.size, pol.flags, pol.contract == Contract::kNofail,
                                      r.name, r.callsite);
  if (injected && !kv) {
    stats::bump(counters.attempts);
    stats::bump(counters.failures);
    errno = ENOMEM;
    return nullptr;
  }
  // Fault injection said no and nothing else needs the engine before the attempt: try
  // jemalloc as the fast path would have; the policy only matters if that fails.
  if (!injected && !kv && !limit_is_set() && r.old == nullptr) {
    if (void *p = attempt(r)) return p;
  }
  stats::bump(counters.attempts);
  Request fresh = r;  // the same request for a new block, when a realloc moves
  fresh.old = nullptr;

  // A region being resized stays a region while it is large enough, else moves to the
  // arena.
  if (r.old != nullptr && region::contains(r.old)) {
    if (r.size >= threshold) {
      RegionTry resize(r, r.old);
      return with_policy(r, pol, counters, resize, warn);
    }
    ArenaTry to_arena(fresh);
    return move_block(r, pol, counters, to_arena, warn);
  }

  if (!kv) {
    ArenaTry arena(r);
    return with_policy(r, pol, counters, arena, warn);
  }

  // kv: straight to a region at kv_direct and above; else the light arena attempt
  // first, and a region under the full policy when it fails.
  const size_t direct = g_config.kv_direct.load(std::memory_order_relaxed);
  if (direct != 0 && r.size >= direct) {
    stats::bump(stats::g_counters.kv_direct);
  } else {
    if (void *p = injected ? nullptr : light_arena_attempt(r)) return p;
    stats::bump(stats::g_counters.kv_fallbacks);
  }
  RegionTry to_region(fresh, nullptr);
  if (r.old == nullptr) return with_policy(r, pol, counters, to_region, warn);
  return move_block(r, pol, counters, to_region, warn);
}

namespace {
std::atomic<int> g_failure_scopes{0};
std::atomic<int> g_kv_scopes{0};
std::atomic<int> g_reserve_scopes{0};
std::atomic<int> g_nowait_scopes{0};
}  // namespace

std::atomic<bool> g_nowait_everywhere{false};

void count_scopes(const ScopeDeltas &d) {
  if (d.failure != 0) g_failure_scopes.fetch_add(d.failure);
  if (d.kv != 0) g_kv_scopes.fetch_add(d.kv);
  if (d.reserve != 0) g_reserve_scopes.fetch_add(d.reserve);
  if (d.nowait != 0) g_nowait_scopes.fetch_add(d.nowait);
  update_engagement();
}

void update_engagement() {
  const Flags policy = g_config.policy.load();
  const Flags by_rules = rules::any_flags();
  const bool on_failure = (policy & (ALLOCSCOPE_NOFAIL | ALLOCSCOPE_RETRY_MAYFAIL)) ||
                          reclaim::registered() != 0 || g_failure_scopes.load() != 0 ||
                          by_rules != 0;
  const bool kv = ((policy | by_rules) & ALLOCSCOPE_KV) || g_kv_scopes.load() != 0;
  const bool kv_direct = kv && g_config.kv_direct.load() != 0;
  const bool atomic_reserve = atomic_reserve::size() != 0;
  g_nowait_everywhere.store(atomic_reserve && ((policy | by_rules) & ALLOCSCOPE_NOWAIT));
  const bool reserves = g_reserve_scopes.load() != 0 || g_nowait_everywhere.load() ||
                        (atomic_reserve && g_nowait_scopes.load() != 0);
  const uint32_t set = (on_failure ? kEngagedOnFailure : 0u) | (kv ? kEngagedKv : 0u) |
                       (kv_direct ? kEngagedKvDirect : 0u) | (reserves ? kEngagedReserves : 0u);
  const uint32_t clear =
      (kEngagedOnFailure | kEngagedKv | kEngagedKvDirect | kEngagedReserves) & ~set;
  change_engaged(set, clear);
}

void release(void *p, int jemalloc_flags) noexcept {
  if (region::contains(p)) {
    const size_t bytes = region::usable_size(p);
    if (region::release(p))
      budget::uncharge_outside(bytes);
    else
      report("free(%p): inside the region window but not the start of a region; ignored", p);
    return;
  }
  if (limit_is_set()) budget::ensure_joined(t_state);
  if (jemalloc_flags == 0)
    je_free(p);
  else if (p != nullptr)
    je_dallocx(p, jemalloc_flags);
  budget::wake_waiters();
}

void release_sized(void *p, size_t size, int jemalloc_flags) noexcept {
  if (region::contains(p)) return release(p, 0);
  if (limit_is_set()) budget::ensure_joined(t_state);
  je_sdallocx(p, size, jemalloc_flags);
  budget::wake_waiters();
}

size_t resize_in_place(void *p, size_t size, size_t extra, int jemalloc_flags) {
  if (region::contains(p)) return region::usable_size(p);
  ThreadState &t = t_state;
  if (limit_is_set() && t.in_engine == 0) {
    const size_t old = je_sallocx(p, jemalloc_flags);
    if (size > old && !budget::try_charge(t, size - old, false, false)) return old;
    return je_xallocx(p, size, 0, jemalloc_flags);
  }
  return je_xallocx(p, size, extra, jemalloc_flags);
}

namespace {

pthread_key_t g_exit_key;

void on_thread_exit(void *arg) {
  ThreadState &t = *static_cast<ThreadState *>(arg);
  EngineGuard guard;
  // Scopes left open: their counts would keep the fast path engaged for good.
  const ScopeDeltas open{-int{t.failure_scope}, -int{t.kv_scope}, -int{t.reserve_scope},
                         -int{t.nowait_scope}};
  t.failure_scope = t.kv_scope = t.reserve_scope = t.nowait_scope = false;
  if (open.failure != 0 || open.kv != 0 || open.reserve != 0 || open.nowait != 0)
    count_scopes(open);
  reserve::release(t);
  budget::thread_exit(t);
}

// The key is made by whichever comes first: start_engine(), or a thread that joins the
// budget before it (pthread_create called by another library's constructor, which may
// run before ours).
void create_exit_key() { pthread_key_create(&g_exit_key, on_thread_exit); }
pthread_once_t g_exit_key_once = PTHREAD_ONCE_INIT;

}  // namespace

void watch_thread_exit(ThreadState &t) {
  if (t.exit_watched) return;
  t.exit_watched = true;
  pthread_once(&g_exit_key_once, create_exit_key);
  pthread_setspecific(g_exit_key, &t);  // a slot in the thread descriptor: no allocation
}

void start_engine() {
  EngineGuard guard;
  pthread_once(&g_exit_key_once, create_exit_key);
  pthread_atfork(prefork, postfork_parent, postfork_child);
  if (const char *conf = secure_getenv("ALLOCSCOPE_CONF")) apply_config(conf, "ALLOCSCOPE_CONF");
}

}  // namespace allocscope
