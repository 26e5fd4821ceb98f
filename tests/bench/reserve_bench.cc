// reserve_bench.cc: what a RESERVE allocation costs next to a plain one, in one process
// under the preload (scripts/bench runs it under allocscope, repetitions interleaved).
// Each benchmark has a plain and a reserved form; one item is a malloc(n)/free or a
// new/delete pair on one thread. The reserved form runs in a RESERVE scope over a 4 MiB
// reserve, released and made again whenever less than one batch of items is left: that
// is part of the price of using a reserve and is counted.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include "allocscope.h"

namespace {

constexpr size_t kReserve = 4 << 20;
constexpr int kBatch = 1024;

struct Object64 {
  char bytes[64];
};

template <typename Pair>
void run(benchmark::State &state, bool reserved, size_t bytes_per_item, Pair pair) {
  if (!allocscope_active()) {
    state.SkipWithError("not under liballocscope.so");
    return;
  }
  allocscope_cookie_t cookie = 0;
  if (reserved) {
    if (allocscope_reserve(kReserve) != 0) {
      state.SkipWithError("allocscope_reserve failed");
      return;
    }
    cookie = allocscope_save(ALLOCSCOPE_RESERVE);
  }
  while (state.KeepRunningBatch(kBatch)) {
    for (int i = 0; i < kBatch; ++i) pair();
    if (reserved && allocscope_reserve_left() < kBatch * bytes_per_item) {
      allocscope_reserve_release();
      allocscope_reserve(kReserve);
    }
  }
  if (reserved) {
    allocscope_restore(cookie);
    allocscope_reserve_release();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("pair");
}

void malloc_pairs(benchmark::State &state, bool reserved) {
  const size_t size = static_cast<size_t>(state.range(0));
  run(state, reserved, size, [size] {  // small sizes: the usable size is the cost
    void *p = malloc(size);
    benchmark::DoNotOptimize(p);
    free(p);
  });
}

void new_delete(benchmark::State &state, bool reserved) {
  run(state, reserved, sizeof(Object64), [] {
    Object64 *p = new Object64;
    benchmark::DoNotOptimize(p);
    delete p;
  });
}

BENCHMARK_CAPTURE(malloc_pairs, plain, false)->Arg(64)->Arg(4096)->UseRealTime();
BENCHMARK_CAPTURE(malloc_pairs, reserved, true)->Arg(64)->Arg(4096)->UseRealTime();
BENCHMARK_CAPTURE(new_delete, plain, false)->UseRealTime();
BENCHMARK_CAPTURE(new_delete, reserved, true)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
