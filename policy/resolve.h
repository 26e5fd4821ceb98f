// resolve.h: from a thread's scope flags and a call's flags to the policy one allocation
// follows. This is the resolution table of shim/allocscope.h, as a pure function.
#pragma once

#include <cstddef>

#include "flags.h"

namespace allocscope {

enum class Contract { kNormal, kNoretry, kRetryMayfail, kNofail, kNowait };

const char *contract_name(Contract c);

struct Policy {
  Contract contract = Contract::kNormal;
  Flags flags = 0;        // every non-contract flag in force (scope | call | default)
  bool conflict = false;  // call-site NOFAIL inside a NOWAIT scope (rule 1)
};

// What nofail_in_nowait says to do about a conflict.
enum class ConflictAction { kWait, kFail, kAbort };

// scope: the thread's flags; call: the call-site flags (0 for plain malloc/new);
// fallback: the process default policy. On a conflict the contract is NOFAIL for kWait
// and kAbort (the caller aborts) and NOWAIT for kFail.
Policy resolve(Flags scope, Flags call, Flags fallback, ConflictAction on_conflict);

}  // namespace allocscope
