// gate.cc: see gate.h.
#include "gate.h"

namespace allocscope {
namespace gate {

EntryGate g_gate;
std::atomic<size_t> g_size_cap{SIZE_MAX};

namespace {

// The state modules publish (gate.h). Each is written by its module, read by derive().
std::atomic<Flags> g_default_policy{0};
std::atomic<Flags> g_rule_flags{0};
std::atomic<int> g_reclaimers{0};
std::atomic<bool> g_kv_to_region{false};
std::atomic<bool> g_atomic_reserve{false};
std::atomic<bool> g_nowait_everywhere{false};
std::atomic<int> g_failure_scopes{0};
std::atomic<int> g_kv_scopes{0};
std::atomic<int> g_reserve_scopes{0};
std::atomic<int> g_nowait_scopes{0};

constexpr const char *kBitNames[kBitCount] = {
    "limit",   "on_failure", "waiters",       "kv",     "kv_to_region", "regions",
    "faults",  "reserve_scope", "atomic_reserve", "refill", "limit_near",  "new_handler", "exiting",
    "foreign", "leak_track"};

void publish_words();

// Recomputes the bits that follow from the published state. Two threads publishing at
// once each recompute from everything published so far: the later change() wins with a
// complete view.
void derive() {
  const Flags policy = g_default_policy.load();
  const Flags by_rules = g_rule_flags.load();
  const bool on_failure = ((policy | by_rules) & (ALLOCSCOPE_NOFAIL | ALLOCSCOPE_RETRY_MAYFAIL)) ||
                          g_reclaimers.load() != 0 || g_failure_scopes.load() != 0 ||
                          by_rules != 0;
  const bool kv = ((policy | by_rules) & ALLOCSCOPE_KV) || g_kv_scopes.load() != 0;
  const bool atomic_reserve = g_atomic_reserve.load();
  g_nowait_everywhere.store(atomic_reserve && ((policy | by_rules) & ALLOCSCOPE_NOWAIT));
  const bool nowait_served =
      g_nowait_everywhere.load() || (atomic_reserve && g_nowait_scopes.load() != 0);
  const uint32_t set = (on_failure ? kOnFailure : 0u) | (kv ? kKv : 0u) |
                       (kv && g_kv_to_region.load() ? kKvToRegion : 0u) |
                       (g_reserve_scopes.load() != 0 ? kReserveScope : 0u) |
                       (nowait_served ? kAtomicReserve : 0u);
  const uint32_t derived = kOnFailure | kKv | kKvToRegion | kReserveScope | kAtomicReserve;
  change(set, derived & ~set);
}

// Publishes the gate words for the bits (and max_size) now in force. Another thread
// changing them meanwhile publishes its own; whichever store comes last, the loop makes
// it match the last change: a store is only final once its inputs are seen unchanged
// after it.
void publish_words() {
  std::atomic<uint32_t> &engaged = g_gate.engaged;
  for (;;) {
    const uint32_t current = engaged.load();
    const size_t cap = g_size_cap.load();
    g_gate.direct_below.store(direct_below_for(current));
    g_gate.checked_below.store(checked_below_for(current));
    g_gate.new_below.store(new_below_for(current));
    g_gate.malloc_call.store(malloc_call_for(current));
    g_gate.new_call.store(new_call_for(current));
    g_gate.free_call.store(free_call_for(current));
    if (engaged.load() == current && g_size_cap.load() == cap) break;
  }
}

}  // namespace

void change(uint32_t set, uint32_t clear) {
  std::atomic<uint32_t> &engaged = g_gate.engaged;
  uint32_t current = engaged.load();
  do {
    // Nothing to change: the gate already is, or is being, published for these bits.
    if (((current | set) & ~clear) == current) return;
  } while (!engaged.compare_exchange_weak(current, (current | set) & ~clear));
  publish_words();
}

const char *bit_name(uint32_t bit) {
  for (uint32_t i = 0; i < kBitCount; ++i)
    if (bit == (1u << i)) return kBitNames[i];
  return "?";
}

void publish_default_policy(Flags policy) {
  g_default_policy.store(policy);
  derive();
}

void publish_rule_flags(Flags any) {
  g_rule_flags.store(any);
  derive();
}

void publish_reclaimers(int registered) {
  g_reclaimers.store(registered);
  derive();
}

void publish_kv_to_region(bool set) {
  g_kv_to_region.store(set);
  derive();
}

void publish_atomic_reserve(bool on) {
  g_atomic_reserve.store(on);
  derive();
}

void publish_max_size(size_t max_size) {
  g_size_cap.store(max_size);
  publish_words();
}

void publish_foreign() { change(kForeign, 0); }

void publish_new_handler(bool installed) {
  if (installed) change(kNewHandler, 0);
  else change(0, kNewHandler);
}

void count_scopes(const ScopeDeltas &d) {
  if (d.failure != 0) g_failure_scopes.fetch_add(d.failure);
  if (d.kv != 0) g_kv_scopes.fetch_add(d.kv);
  if (d.reserve != 0) g_reserve_scopes.fetch_add(d.reserve);
  if (d.nowait != 0) g_nowait_scopes.fetch_add(d.nowait);
  derive();
}

bool nowait_everywhere() { return g_nowait_everywhere.load(std::memory_order_relaxed); }

}  // namespace gate
}  // namespace allocscope
