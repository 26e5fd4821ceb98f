// resolve_test.cc: the resolution table of shim/allocscope.h (resolve.h), rule by rule, and
// then every combination of contract flags against the table as the header words it.
#include "resolve.h"

#include <initializer_list>
#include <string>

#include <gtest/gtest.h>

#include "flags.h"

namespace allocscope {
namespace {

constexpr Flags kNofail = ALLOCSCOPE_NOFAIL;
constexpr Flags kNowait = ALLOCSCOPE_NOWAIT;
constexpr Flags kNoretry = ALLOCSCOPE_NORETRY;
constexpr Flags kMayfail = ALLOCSCOPE_RETRY_MAYFAIL;
constexpr ConflictAction kActions[] = {ConflictAction::kWait, ConflictAction::kFail,
                                       ConflictAction::kAbort};

Contract contract(Flags scope, Flags call, Flags fallback = 0,
                  ConflictAction action = ConflictAction::kWait) {
  return resolve(scope, call, fallback, action).contract;
}

// Every subset of the four contract flags.
constexpr Flags kContractSets[] = {0,
                                   kNofail,
                                   kNowait,
                                   kNofail | kNowait,
                                   kNoretry,
                                   kNoretry | kNofail,
                                   kNoretry | kNowait,
                                   kNoretry | kNofail | kNowait,
                                   kMayfail,
                                   kMayfail | kNofail,
                                   kMayfail | kNowait,
                                   kMayfail | kNofail | kNowait,
                                   kMayfail | kNoretry,
                                   kMayfail | kNoretry | kNofail,
                                   kMayfail | kNoretry | kNowait,
                                   kContractMask};

// Rule 1: a call-site NOFAIL wins over every other contract, wherever it comes from.
TEST(Resolve, CallSiteNofailWinsOverEverything) {
  for (Flags scope : kContractSets) {
    if (scope & kNowait) continue;  // the conflict: CallSiteNofailInANowaitScope...
    for (Flags call : kContractSets) {
      if (!(call & kNofail)) continue;
      for (Flags fallback : kContractSets) {
        const Policy p = resolve(scope, call, fallback, ConflictAction::kFail);
        EXPECT_EQ(p.contract, Contract::kNofail) << scope << " " << call << " " << fallback;
        EXPECT_FALSE(p.conflict) << scope << " " << call << " " << fallback;
      }
    }
  }
}

// Rule 1's conflict: a call-site NOFAIL inside a NOWAIT scope is a caller bug, flagged
// for the caller to report, and nofail_in_nowait decides: wait (NOFAIL wins), fail
// (NOWAIT), abort (NOFAIL, and the caller aborts).
TEST(Resolve, CallSiteNofailInANowaitScopeIsAConflictEachActionDecides) {
  for (Flags scope : {kNowait, kNowait | kNofail, kNowait | kNoretry | kMayfail}) {
    for (Flags call : {kNofail, kNofail | kNowait, kNofail | kNoretry}) {
      Policy p = resolve(scope, call, 0, ConflictAction::kWait);
      EXPECT_EQ(p.contract, Contract::kNofail);
      EXPECT_TRUE(p.conflict);
      p = resolve(scope, call, 0, ConflictAction::kFail);
      EXPECT_EQ(p.contract, Contract::kNowait);
      EXPECT_TRUE(p.conflict);
      p = resolve(scope, call, 0, ConflictAction::kAbort);
      EXPECT_EQ(p.contract, Contract::kNofail);
      EXPECT_TRUE(p.conflict);
    }
  }
  // NOWAIT in the default policy is no scope: no caller bug there.
  for (ConflictAction action : kActions) {
    const Policy p = resolve(0, kNofail, kNowait, action);
    EXPECT_EQ(p.contract, Contract::kNofail);
    EXPECT_FALSE(p.conflict);
  }
  // Nor is a scoped NOFAIL inside a NOWAIT scope a conflict of resolve's: NOWAIT wins
  // (scope.cc reports the save).
  for (ConflictAction action : kActions) {
    const Policy p = resolve(kNowait | kNofail, 0, 0, action);
    EXPECT_EQ(p.contract, Contract::kNowait);
    EXPECT_FALSE(p.conflict);
  }
}

// Rule 2: a call site that names NOWAIT, NORETRY or RETRY_MAYFAIL has an error path, so
// its contract wins over the scope's, NOWAIT > NORETRY > RETRY_MAYFAIL within the call.
TEST(Resolve, CallSiteContractOrder) {
  for (Flags scope : kContractSets) {
    for (Flags fallback : {Flags{0}, kNofail, kNowait}) {
      EXPECT_EQ(contract(scope, kNowait, fallback), Contract::kNowait);
      EXPECT_EQ(contract(scope, kNowait | kNoretry, fallback), Contract::kNowait);
      EXPECT_EQ(contract(scope, kNowait | kMayfail, fallback), Contract::kNowait);
      EXPECT_EQ(contract(scope, kNowait | kNoretry | kMayfail, fallback), Contract::kNowait);
      EXPECT_EQ(contract(scope, kNoretry, fallback), Contract::kNoretry);
      EXPECT_EQ(contract(scope, kNoretry | kMayfail, fallback), Contract::kNoretry);
      EXPECT_EQ(contract(scope, kMayfail, fallback), Contract::kRetryMayfail);
    }
  }
}

// Rule 3: otherwise the scope decides, NOWAIT > NOFAIL > NORETRY > RETRY_MAYFAIL (NOWAIT is
// a promise about the context, so it beats a scoped NOFAIL).
TEST(Resolve, ScopeOrder) {
  for (Flags fallback : kContractSets) {
    EXPECT_EQ(contract(kNowait | kNofail | kNoretry | kMayfail, 0, fallback), Contract::kNowait);
    EXPECT_EQ(contract(kNowait | kNofail, 0, fallback), Contract::kNowait);
    EXPECT_EQ(contract(kNofail | kNoretry | kMayfail, 0, fallback), Contract::kNofail);
    EXPECT_EQ(contract(kNofail, 0, fallback), Contract::kNofail);
    EXPECT_EQ(contract(kNoretry | kMayfail, 0, fallback), Contract::kNoretry);
    EXPECT_EQ(contract(kMayfail, 0, fallback), Contract::kRetryMayfail);
  }
  // Call-site flags that are not contracts leave it to the scope.
  EXPECT_EQ(contract(kMayfail, ALLOCSCOPE_ZERO | ALLOCSCOPE_NOWARN | ALLOCSCOPE_KV),
            Contract::kRetryMayfail);
}

// Rule 4: with no contract at the call site or in the scope, the default policy decides in
// the scope's order; with none there either, "normal".
TEST(Resolve, DefaultPolicy) {
  EXPECT_EQ(contract(0, 0, kNowait | kNofail), Contract::kNowait);
  EXPECT_EQ(contract(0, 0, kNofail | kNoretry), Contract::kNofail);
  EXPECT_EQ(contract(0, 0, kNoretry | kMayfail), Contract::kNoretry);
  EXPECT_EQ(contract(0, 0, kMayfail), Contract::kRetryMayfail);
  EXPECT_EQ(contract(0, 0, 0), Contract::kNormal);
  EXPECT_EQ(contract(ALLOCSCOPE_NOWARN, ALLOCSCOPE_ZERO, ALLOCSCOPE_KV), Contract::kNormal);
}

// Rule 5: every flag that is not a contract is the union of scope, call site and default
// policy; contracts never appear among them.
TEST(Resolve, OtherFlagsAreTheUnion) {
  const Flags scope = ALLOCSCOPE_NOWARN | ALLOCSCOPE_NORECLAIM_CLASS(3) | kNowait;
  const Flags call = ALLOCSCOPE_ZERO | ALLOCSCOPE_KV | kNofail | kNoretry;
  const Flags fallback = ALLOCSCOPE_MEMALLOC | ALLOCSCOPE_NORECLAIM_CLASS(15) | kMayfail;
  for (ConflictAction action : kActions) {
    EXPECT_EQ(resolve(scope, call, fallback, action).flags,
              ALLOCSCOPE_NOWARN | ALLOCSCOPE_NORECLAIM_CLASS(3) | ALLOCSCOPE_ZERO |
                  ALLOCSCOPE_KV | ALLOCSCOPE_MEMALLOC | ALLOCSCOPE_NORECLAIM_CLASS(15));
  }
  for (Flags s : kContractSets)
    for (Flags c : kContractSets)
      for (Flags f : kContractSets) EXPECT_EQ(resolve(s, c, f, ConflictAction::kWait).flags, 0u);
  EXPECT_EQ(resolve(ALLOCSCOPE_NOMEMALLOC, ALLOCSCOPE_MEMALLOC, 0, ConflictAction::kWait).flags,
            ALLOCSCOPE_NOMEMALLOC | ALLOCSCOPE_MEMALLOC)
      << "both kept: which wins is the budget's business";
}

// The table as shim/allocscope.h words it, applied to every combination of contract flags
// in scope, call site and default policy, under each conflict action.
TEST(Resolve, EveryCombinationFollowsTheTable) {
  auto first_of = [](Flags flags, std::initializer_list<std::pair<Flags, Contract>> order,
                     Contract *out) {
    for (const auto &[flag, c] : order)
      if (flags & flag) return *out = c, true;
    return false;
  };
  const std::initializer_list<std::pair<Flags, Contract>> call_order = {
      {kNowait, Contract::kNowait},
      {kNoretry, Contract::kNoretry},
      {kMayfail, Contract::kRetryMayfail}};
  const std::initializer_list<std::pair<Flags, Contract>> scope_order = {
      {kNowait, Contract::kNowait},
      {kNofail, Contract::kNofail},
      {kNoretry, Contract::kNoretry},
      {kMayfail, Contract::kRetryMayfail}};
  int checked = 0;
  for (Flags s : kContractSets)
    for (Flags c : kContractSets)
      for (Flags f : kContractSets)
        for (ConflictAction action : kActions) {
          Contract want = Contract::kNormal;
          bool conflict = false;
          if (c & kNofail) {  // 1
            conflict = s & kNowait;
            want = conflict && action == ConflictAction::kFail ? Contract::kNowait
                                                                : Contract::kNofail;
          } else if (!first_of(c, call_order, &want) &&   // 2
                     !first_of(s, scope_order, &want) &&  // 3
                     !first_of(f, scope_order, &want)) {  // 4
            want = Contract::kNormal;
          }
          const Policy p = resolve(s, c, f, action);
          ASSERT_EQ(p.contract, want) << "scope " << s << " call " << c << " default " << f;
          ASSERT_EQ(p.conflict, conflict) << "scope " << s << " call " << c << " default " << f;
          ++checked;
        }
  EXPECT_EQ(checked, 16 * 16 * 16 * 3);
}

TEST(Resolve, ContractNamesAreTheStatsKeys) {
  EXPECT_STREQ(contract_name(Contract::kNormal), "normal");
  EXPECT_STREQ(contract_name(Contract::kNoretry), "noretry");
  EXPECT_STREQ(contract_name(Contract::kRetryMayfail), "retry_mayfail");
  EXPECT_STREQ(contract_name(Contract::kNofail), "nofail");
  EXPECT_STREQ(contract_name(Contract::kNowait), "nowait");
}

}  // namespace
}  // namespace allocscope
