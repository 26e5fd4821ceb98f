// rules.cc: see rules.h.
#include "rules.h"

#include <string.h>

#include <atomic>

#include "callsite.h"
#include "gate.h"
#include "options.h"

namespace allocscope {
namespace rules {
namespace {

struct RuleSet {
  RuleText rules[kMaxRules];
  int count;
  Flags any;
};

// Two sets: configure() fills the one it did not fill last time, then publishes it, so
// readers of the previous set never see it being written. The choice follows the last
// set filled, not g_current: after "none" publishes nullptr, the set before it may still
// be read. (A reader would have to stay inside flags_for across two reconfigurations to
// see a set rewritten. Configuration is serialised by config's lock.)
RuleSet g_sets[2];
int g_last_filled = 1;
std::atomic<RuleSet *> g_current{nullptr};

}  // namespace

bool configure(std::string_view text) {
  RuleSet *next = &g_sets[g_last_filled ^ 1];
  if (!parse_rules(text, next->rules, &next->count)) return false;
  g_last_filled ^= 1;
  next->any = 0;
  for (int i = 0; i < next->count; ++i) next->any |= next->rules[i].flags;
  g_current.store(next->count != 0 ? next : nullptr, std::memory_order_release);
  gate::publish_rule_flags(next->any);
  return true;
}

Flags flags_for(const void *callsite) {
  const RuleSet *set = g_current.load(std::memory_order_acquire);
  if (set == nullptr) return 0;
  const CallSite *site = call_site(callsite);
  if (site == nullptr || !site->known()) return 0;
  const char *module = site->module();
  for (int i = 0; i < set->count; ++i)
    if (strncmp(module, set->rules[i].module, strlen(set->rules[i].module)) == 0)
      return set->rules[i].flags;
  return 0;
}

}  // namespace rules
}  // namespace allocscope
