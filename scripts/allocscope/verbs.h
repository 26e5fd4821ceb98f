// verbs.h: the command's verbs, each defined in its own file (run.cc, sweep.cc, lib.cc).
#pragma once

#include "cli.h"

namespace allocscope::cmd {

extern const Verb kRunVerb;
extern const Verb kSweepVerb;
extern const Verb kLibVerb;

}  // namespace allocscope::cmd
