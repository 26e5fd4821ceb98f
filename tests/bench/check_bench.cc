// check_bench.cc: what a failure check (shim/allocscope_testing.h) costs per point, under
// the preload: hundred_allocations() (100 small allocations, checked and freed) checked in
// process, and with ALLOCSCOPE_CHECK_FORK, next to one plain call of it. A check runs fn
// 102 times (a warm-up, the counted run, 100 points); "per_point" is the check's time over
// its 100 points, and the overhead of a point is per_point minus a plain call. scripts/bench
// does not run it; README quotes it next to `allocscope sweep --mode nth` on
// hundred_allocations (the same function as a program).
#include <benchmark/benchmark.h>

#include "allocscope_testing.h"
#include "allocscope.h"
#include "hundred_allocations.h"

namespace {

void plain_call(benchmark::State &state) {
  for (auto _ : state) benchmark::DoNotOptimize(hundred_allocations(nullptr));
  state.SetLabel("one call of fn");
}
BENCHMARK(plain_call);

void check(benchmark::State &state, unsigned flags) {
  if (!allocscope_active()) {
    state.SkipWithError("not under liballocscope.so");
    return;
  }
  for (auto _ : state) {
    allocscope_check_report r;
    if (allocscope_check_failures(hundred_allocations, nullptr, flags, &r) != 0 ||
        r.points != kHundred || r.errors != kHundred || r.leaks != 0) {
      state.SkipWithError("the check did not find 100 handled points");
      return;
    }
  }
  state.counters["per_point"] = benchmark::Counter(
      kHundred, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetLabel("one check: 102 calls, 100 points");
}

void in_process(benchmark::State &state) { check(state, 0); }
BENCHMARK(in_process)->Unit(benchmark::kMicrosecond);

void forked(benchmark::State &state) { check(state, ALLOCSCOPE_CHECK_FORK); }
BENCHMARK(forked)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
