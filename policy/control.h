// control.h: applying a configuration to the modules.
//
// options.h parses (a leaf); this applies each parsed setting to the module that owns it
// (the budget, regions, rules, the atomic reserve, fault injection, reports). It is the
// only configuration code that calls into modules. A bad pair never brings the host down:
// it is reported in one line and every other pair still applies; with strict:true (from
// this or an earlier configuration) a bad pair is fatal instead: the report is followed
// by abort().
#pragma once

#include <string_view>

namespace allocscope {

// Applies `text` (ALLOCSCOPE_CONF's grammar). `source` names it in reports
// ("ALLOCSCOPE_CONF", "allocscope_config"). Returns the number of bad pairs (0 = all
// applied). Serialised by the configuration lock (options.h).
int apply_config(std::string_view text, const char *source);

}  // namespace allocscope
