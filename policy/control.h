// control.h: applying a configuration to the modules.
//
// options.h parses (a leaf); this applies each parsed setting to the module that owns it
// (the budget, regions, rules, the atomic reserve, fault injection, reports). It is the
// only configuration code that calls into modules. A bad pair never brings the host down:
// it is reported in one line and every other pair still applies; with strict:true (from
// this or an earlier configuration) a bad pair is fatal instead: the report is followed
// by abort().
#pragma once

#include <stddef.h>

#include <string_view>

namespace allocscope {

// Applies `text` (ALLOCSCOPE_CONF's grammar). `source` names it in reports
// ("ALLOCSCOPE_CONF", "allocscope_config"). Returns the number of bad pairs (0 = all
// applied). Serialised by the configuration lock (options.h).
int apply_config(std::string_view text, const char *source);

// The same for a request from outside (allocscope ctl, live_page.h), at one of the
// process's events: the error lines are also copied, '\n'-separated, into errors[cap] for
// the caller. Returns -1, applying nothing, when the configuration lock is busy (the event
// may come from inside a configuration being applied): the request waits for the next.
// strict:true does not make a request's bad pair fatal: the process is not the one that
// got it wrong.
int try_apply_config(std::string_view text, const char *source, char *errors, size_t cap);

}  // namespace allocscope
