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

// Two sets: configure() fills the one not in use, then publishes it, so readers never
// see a set being written. (Configuration is serialised by config's lock.)
RuleSet g_sets[2];
std::atomic<RuleSet *> g_current{nullptr};

}  // namespace

bool configure(std::string_view text) {
  RuleSet *next = g_current.load() == &g_sets[0] ? &g_sets[1] : &g_sets[0];
  if (!parse_rules(text, next->rules, &next->count)) return false;
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
