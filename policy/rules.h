// rules.h: scope flags by caller module, for binaries that cannot call the API.
//
//   rules:libsqlite3=nowait|nowarn/libfoo=nofail
//
// An allocation whose direct caller lies in a module whose file name starts with
// libsqlite3 is resolved as if its thread's scope also held nowait|nowarn. The first
// matching rule applies. Rules only change what happens when an allocation fails (and,
// with kv, how a realloc grows), so while rules are set successes stay on the fast path
// and only failures pay for the caller lookup (callsite.h, cached).
#pragma once

#include <string_view>

#include "flags.h"

namespace allocscope {
namespace rules {

// Replaces the rule set ("none" clears it; the grammar is options.h's parse_rules).
// False, changing nothing, if `text` is bad.
bool configure(std::string_view text);

// The flags the rules give an allocation called from `callsite` (0: no rule matches).
Flags flags_for(const void *callsite);


}  // namespace rules
}  // namespace allocscope
