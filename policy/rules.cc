// rules.cc: see rules.h.
#include "rules.h"

#include <string.h>

#include <atomic>

#include "callsite.h"
#include "engine.h"

namespace allocscope {
namespace rules {
namespace {

struct Rule {
  char module[64];
  Flags flags;
};

struct RuleSet {
  Rule rules[kMaxRules];
  int count;
  Flags any;
};

// Two sets: configure() fills the one not in use, then publishes it, so readers never
// see a set being written. (Configuration is serialised by config's lock.)
RuleSet g_sets[2];
std::atomic<RuleSet *> g_current{nullptr};

bool parse(std::string_view text, RuleSet *out) {
  out->count = 0;
  out->any = 0;
  if (text == "none") return true;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('/', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view rule = text.substr(pos, end - pos);
    const size_t eq = rule.find('=');
    if (eq == 0 || eq == std::string_view::npos || eq >= sizeof(Rule::module) ||
        out->count == kMaxRules)
      return false;
    Rule &r = out->rules[out->count++];
    memcpy(r.module, rule.data(), eq);
    r.module[eq] = '\0';
    const std::string_view flags = rule.substr(eq + 1);
    if (!parse_flags(flags.data(), flags.size(), &r.flags) || r.flags == 0 ||
        (r.flags & ALLOCSCOPE_ZERO))
      return false;
    out->any |= r.flags;
    pos = end + 1;
  }
  return true;
}

}  // namespace

bool configure(std::string_view text) {
  RuleSet *next = g_current.load() == &g_sets[0] ? &g_sets[1] : &g_sets[0];
  if (!parse(text, next)) return false;
  g_current.store(next->count != 0 ? next : nullptr, std::memory_order_release);
  update_engagement();
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

Flags any_flags() {
  const RuleSet *set = g_current.load(std::memory_order_acquire);
  return set != nullptr ? set->any : 0;
}

}  // namespace rules
}  // namespace allocscope
