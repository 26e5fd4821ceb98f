// fault.h: fault injection, the kernel's fault attributes for malloc.
//
// Configured with the fault.* keys (options.h holds the settings, control.cc sets them). fault.probability, fault.callsite and
// fault.caller select failures (probability then defaults to 100); fault.nth and
// allocscope_fail_nth() select one each; times, interval, space and the filters shape
// them. Once anything is selected, every allocation goes through the engine, which asks
// inject() before trying it.
// inject() checks in the kernel's order (lib/fault-inject.c, failslab):
//   1. eligibility: NOFAIL and NOFAULT allocations never fail; fault.threads:marked
//      limits it to threads that called allocscope_fault_mark(1); fault.size_min/max;
//      fault.callsite (one call site); fault.caller / fault.reject (modules among the
//      first fault.depth frames);
//   2. nth: the thread's allocscope_fail_nth() countdown, then the process's fault.nth
//      countdown (each fails exactly one allocation);
//   3. probability 0 disables everything below, as in the kernel;
//   4. times (failures left; -1 = unlimited), space (bytes that pass before failures
//      start), interval (every N-th candidate), probability (a percentage with decimals,
//      or 1/N; drawn from a sequence fault.seed starts).
// An injected failure is NULL/ENOMEM at once, with no retry: the point is to reach the
// caller's error path. Each one is logged (fault.log: one JSON line, written at once)
// and reported (fault.verbose, unless NOWARN). fault.record writes, at exit, every
// distinct call site of eligible allocations with its count: a sweep's list of points.
//
// A call site is the return address of the allocator's caller, printed as
// "module+0xoffset" from the module's load base: the same in every run despite ASLR.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "flags.h"
#include "options.h"

namespace allocscope {
namespace fault {

// A fault.* key was set (g_fault_settings): restarts the random sequence for fault.seed
// and fault.reset, and brings gate::kFaults in step.
void settings_changed(Key key);

// Should this allocation fail? `flags`: the resolved non-contract flags; `nofail`: the
// resolved contract is NOFAIL. Logs and reports the injection when it says yes.
bool inject(size_t size, Flags flags, bool nofail, const char *function, const void *callsite);

// The per-thread countdown of allocscope_fail_nth (like /proc/self/fail-nth).
int set_fail_nth(unsigned n);
unsigned fail_nth_left();
// fault.threads:marked: whether the calling thread may be failed.
int mark_thread(bool on);

// At exit: writes fault.record.
void write_record();

}  // namespace fault
}  // namespace allocscope
