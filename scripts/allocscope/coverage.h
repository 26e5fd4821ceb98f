// coverage.h: how much of a program's failure handling a sweep exercised. Two measures:
// points run of points known (the baseline's call sites, or its allocations in nth
// mode), and a static scan of the program file (and any other module asked for) for the
// instructions that call an allocation function, against those the runs reached: the
// unreached ones are allocation failures the workload never tested.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "json.h"

namespace allocscope::cmd {

// A call to an allocation function found in a module's code.
struct AllocationCall {
  std::string function;  // the callee: malloc, calloc, _Znwm, ...
  uint64_t site = 0;     // the module offset a call site names: return address - 1
};

// x86-64 only: `call rel32` (e8) to a PLT entry of an allocation function, and
// `call *slot(%rip)` (ff 15) through its GOT slot (-fno-plt). PLT entries are found by
// decoding their `jmp *slot(%rip)` and matching the slot with the relocations (JUMP_SLOT,
// GLOB_DAT) that name the function. The code is scanned as bytes, not disassembled: a
// false match needs those bytes to encode an exact PLT address, which is rare.
absl::StatusOr<std::vector<AllocationCall>> ScanAllocationCalls(const std::string &module_path);

// The coverage object of the report: `points_run`, `points_known`, and per module scanned
// `module`, `calls` (found), `failed` (calls some point failed: a frame of an injected
// failure's stack), `unreached` (the others: `callsite`, `calls` (the callee), `caller`,
// `source`, and `executed`: whether a run was seen going through it at all: the
// baseline's records name direct callers only, so a call to strdup (whose allocation
// libc makes) is seen only in a failed allocation's stack).
// `failed` and `executed` hold "module+0xoffset" frames.
Json CoverageJson(int64_t points_run, std::optional<int64_t> points_known,
                  const std::vector<std::string> &modules,
                  const absl::flat_hash_set<std::string> &failed,
                  const absl::flat_hash_set<std::string> &executed, class Symbolizer &symbolizer);

}  // namespace allocscope::cmd
