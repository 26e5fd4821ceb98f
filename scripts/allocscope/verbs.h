// verbs.h: the command's verbs, each defined in its own file (run.cc, sweep.cc, lib.cc, top.cc, stats_verb.cc, ctl.cc).
#pragma once

#include "cli.h"

namespace allocscope::cmd {

extern const Verb kRunVerb;
extern const Verb kSweepVerb;
extern const Verb kLibVerb;
extern const Verb kTopVerb;
extern const Verb kStatsVerb;
extern const Verb kCtlVerb;

}  // namespace allocscope::cmd
