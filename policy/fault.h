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
//      fault.caller / fault.only / fault.reject (modules among the first fault.depth
//      frames); then, unless fault.persistent has started failing everything (below),
//      fault.callsite (one call site) and fault.stack (one stack, stack_id.h);
//   2. nth: a failure check running on the thread (CheckedThread below, check.h) counts
//      the allocation and may fail it; the thread's allocscope_fail_nth() countdown, then
//      the process's fault.nth countdown (each fails exactly one allocation);
//   3. probability 0 disables everything below, as in the kernel;
//   4. times (failures left; -1 = unlimited), space (bytes that pass before failures
//      start), interval (every N-th candidate), probability (a percentage with decimals,
//      or 1/N; drawn from a sequence fault.seed starts).
// fault.persistent:true: once a failure was injected, every later allocation that passes
// the filters of step 1 (not the call-site and stack selectors) fails too, so error paths
// that allocate are failed as well.
// An injected failure is NULL/ENOMEM at once, with no retry: the point is to reach the
// caller's error path. Each one is logged (fault.log: one JSON line, written at once)
// and reported (fault.verbose, unless NOWARN). fault.record writes, at exit, every
// distinct call site and every distinct stack of eligible allocations with its count: a
// sweep's list of points. fault.events (fault_events.h) adds per-process start, exit and crash
// records, and leak_track.h the bytes the failed path leaves live.
//
// A call site is the return address of the allocator's caller, printed as
// "module+0xoffset" from the module's load base: the same in every run despite ASLR.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "flags.h"
#include "options.h"
#include "thread_state.h"

namespace allocscope {
namespace fault {

// A failure check (check.h) running on a thread, as inject() and the engine see it: the
// thread's eligible allocations are counted here, the one numbered fail_at is failed
// (with `persistent`, every later one too), and the first failure is handed to
// on_first_failure, which runs inside malloc (no allocation, no lock). The engine adds
// the kv region bytes the thread maps and frees (jemalloc's per-thread counters, which
// give the check its leaks, do not see regions). check.cc owns these; a thread points at
// one from t_state.fault.check with the generation it attached in, and a check that ends
// a run bumps `generation`, so a thread still attached to an older run (one fn left
// running) lets go at its next allocation instead of counting into the next run.
struct CheckedThread {
  std::atomic<uint32_t> generation;
  uint64_t eligible;     // eligible allocations so far in this run
  uint64_t fail_at;      // the one to fail, 1-based; 0: none on this thread
  bool persistent;       // ... and every later one
  uint32_t failed;       // allocations failed in this run
  int64_t region_bytes;  // kv region bytes mapped minus unmapped on this thread
  void (*on_first_failure)(CheckedThread &c, size_t size, const char *function);
};

// The check the calling thread (t) is attached to, or nullptr (none, or its run ended).
inline CheckedThread *attached_check(ThreadState &t) {
  CheckedThread *c = t.fault.check;
  if (c == nullptr) return nullptr;
  if (c->generation.load(std::memory_order_acquire) != t.fault.check_generation) {
    t.fault.check = nullptr;
    return nullptr;
  }
  return c;
}
// Attaches t, the calling thread's state, to c in its current generation (nullptr
// detaches).
void attach_check(ThreadState &t, CheckedThread *c);
// A check starts (+1) or ends (-1) somewhere in the process: while any runs, every
// allocation goes through the engine (gate::kFaults), so that inject() sees it.
void count_checks(int delta);
// The engine: t mapped (bytes > 0) or unmapped kv region bytes.
inline void count_region_bytes(ThreadState &t, int64_t bytes) {
  if (CheckedThread *c = attached_check(t)) c->region_bytes += bytes;
}

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

// The last injected failure of this process (fault_events.h writes it into a crash record).
struct LastInjection {
  std::atomic<uint64_t> count{0};  // injections so far; the fields below are the last
  uint64_t nth = 0;
  uint64_t stack = 0;  // stack_id.h hash; 0: not computed
  size_t size = 0;
  const char *function = "";
  int tid = 0;
  char callsite[256] = "";
};
const LastInjection &last_injection();

// At exit: writes fault.record.
void write_record();

}  // namespace fault
}  // namespace allocscope
