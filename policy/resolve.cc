// resolve.cc: see resolve.h and the table in shim/allocscope.h.
#include "resolve.h"

namespace allocscope {
namespace {

// Rule 2's order for call-site flags: a call that names an error-returning contract has
// an error path, so the most failure-prone one it names wins.
bool from_call(Flags call, Contract *out) {
  if (call & ALLOCSCOPE_NOWAIT) return *out = Contract::kNowait, true;
  if (call & ALLOCSCOPE_NORETRY) return *out = Contract::kNoretry, true;
  if (call & ALLOCSCOPE_RETRY_MAYFAIL) return *out = Contract::kRetryMayfail, true;
  return false;
}

// Rule 3's order for scope (and default) flags: NOWAIT is a promise about the context
// (it cannot sleep), so it beats NOFAIL.
bool from_scope(Flags scope, Contract *out) {
  if (scope & ALLOCSCOPE_NOWAIT) return *out = Contract::kNowait, true;
  if (scope & ALLOCSCOPE_NOFAIL) return *out = Contract::kNofail, true;
  if (scope & ALLOCSCOPE_NORETRY) return *out = Contract::kNoretry, true;
  if (scope & ALLOCSCOPE_RETRY_MAYFAIL) return *out = Contract::kRetryMayfail, true;
  return false;
}

}  // namespace

const char *contract_name(Contract c) {
  switch (c) {
    case Contract::kNormal: return "normal";
    case Contract::kNoretry: return "noretry";
    case Contract::kRetryMayfail: return "retry_mayfail";
    case Contract::kNofail: return "nofail";
    case Contract::kNowait: return "nowait";
  }
  return "?";
}

Policy resolve(Flags scope, Flags call, Flags fallback, ConflictAction on_conflict) {
  Policy p;
  p.flags = (scope | call | fallback) & ~kContractMask;
  if (call & ALLOCSCOPE_NOFAIL) {                       // rule 1
    p.contract = Contract::kNofail;
    if (scope & ALLOCSCOPE_NOWAIT) {
      p.conflict = true;
      if (on_conflict == ConflictAction::kFail) p.contract = Contract::kNowait;
    }
  } else if (!from_call(call, &p.contract) &&            // rule 2
             !from_scope(scope, &p.contract) &&          // rule 3
             !from_scope(fallback, &p.contract)) {       // rule 4
    p.contract = Contract::kNormal;
  }
  return p;
}

}  // namespace allocscope
