// alloc_bench.cc: allocator micro benchmarks (Google Benchmark), meant to be run under
// each allocator in turn by scripts/bench, which preloads it. Every benchmark reports
// items_per_second over wall-clock time and labels itself with what one item is (a
// malloc/free pair, a replaced block, a growth chain), so 1/items_per_second is the time
// per item. Nothing is allocated inside a timed loop except by the workload.
//
// `--iterations=N` (scripts/bench --callgrind) runs each single-threaded benchmark for
// exactly N iterations instead of for --benchmark_min_time, and leaves out the two-thread
// ones, whose spinning waits make an instruction count meaningless: the instructions of
// two runs with different N, subtracted, are those of N2 - N1 iterations and nothing else.
#include <benchmark/benchmark.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_support.h"

namespace {

using bench::LockstepThread;
using bench::Rng;
using bench::SizeSequence;
using bench::SpscRing;

// One item: a malloc(n)/free pair of one fixed small size, on one thread: the thread
// cache's fast path and the entry points' overhead, nothing else.
void small_pairs(benchmark::State &state) {
  const size_t size = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    void *p = malloc(size);
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("pair");
}

// One item: a new/delete pair of a 64-byte object: operator new and sized delete.
struct Object64 {
  char bytes[64];
};

void new_delete(benchmark::State &state) {
  for (auto _ : state) {
    Object64 *p = new Object64;
    benchmark::DoNotOptimize(p);
    delete p;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("pair");
}

// One item: free the oldest of 1000 live blocks (16..512 bytes) and allocate its
// replacement. Unlike small_pairs, the block freed is not the one just allocated, so the
// allocator has to keep many sizes and pages in play.
void sliding_window(benchmark::State &state) {
  constexpr size_t kWindow = 1000;
  SizeSequence sizes(16, 512, 42);
  void *window[kWindow];
  for (void *&block : window) block = malloc(sizes.next());

  size_t oldest = 0;
  for (auto _ : state) {
    free(window[oldest]);
    window[oldest] = malloc(sizes.next());
    benchmark::DoNotOptimize(window[oldest]);
    oldest = oldest + 1 == kWindow ? 0 : oldest + 1;
  }
  for (void *block : window) free(block);
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("replacement");
}

// One item: a block (16..256 bytes) allocated by this thread, passed through a ring to a
// second thread and freed there: every free is a remote free. An iteration is a batch of
// blocks and ends when the consumer has freed them all, so no work is left untimed.
void producer_consumer(benchmark::State &state) {
  constexpr size_t kBatch = 1024;
  SizeSequence sizes(16, 256, 7);
  SpscRing<256> ring;
  LockstepThread consumer([&ring] {
    for (size_t i = 0; i < kBatch; ++i) {
      void *block;
      bench::spin_until([&] { return (block = ring.try_pop()) != nullptr; });
      free(block);
    }
  });

  for (auto _ : state) {
    consumer.start_round();
    for (size_t i = 0; i < kBatch; ++i) ring.push(malloc(sizes.next()));
    consumer.finish_round();
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetLabel("block");
}

// Larson-style churn: each of two threads owns 1000 slots of live blocks and keeps
// replacing a random one with a block of random size (16..4096 bytes). One replacement in
// eight hands the old block to the other thread to free instead of freeing it locally.
// One item: one replacement (both threads' replacements count).
class LarsonWorker {
 public:
  static constexpr size_t kReplacementsPerRound = 1000;

  explicit LarsonWorker(uint64_t seed) : rng_(seed) {
    for (void *&slot : slots_) slot = malloc(random_size(rng_.next()));
  }

  ~LarsonWorker() {
    free_handed_over();
    for (void *slot : slots_) free(slot);
  }

  void round(LarsonWorker &peer) {
    for (size_t i = 0; i < kReplacementsPerRound; ++i) {
      free_handed_over();
      // One random number chooses the slot (low bits), the hand-over (middle bits) and
      // the new size (high bits).
      const uint64_t r = rng_.next();
      void *&slot = slots_[r % kSlots];
      const bool hand_over = (r >> 24) % 8 == 0;
      if (!hand_over || !peer.inbox_.try_push(slot)) free(slot);
      slot = malloc(random_size(r >> 32));
      benchmark::DoNotOptimize(slot);
    }
  }

 private:
  static constexpr size_t kSlots = 1000;

  static size_t random_size(uint64_t r) { return 16 + r % (4096 - 16 + 1); }

  void free_handed_over() {
    while (void *block = inbox_.try_pop()) free(block);
  }

  Rng rng_;
  void *slots_[kSlots];
  SpscRing<1024> inbox_;  // blocks the other worker handed over, for this one to free
};

void larson(benchmark::State &state) {
  LarsonWorker main_worker(1), helper_worker(2);
  // Declared after the workers so it is joined before they free their blocks.
  LockstepThread helper([&] { helper_worker.round(main_worker); });

  for (auto _ : state) {
    helper.start_round();
    main_worker.round(helper_worker);
    helper.finish_round();
  }
  state.SetItemsProcessed(state.iterations() * 2 * LarsonWorker::kReplacementsPerRound);
  state.SetLabel("replacement");
}

// One item: a whole growth chain: malloc 1 MiB, realloc doubling up to the argument (in
// MiB), writing one byte per page after each step so every page is really mapped, then
// free. This measures large-block realloc: in-place growth, mremap or copying.
void realloc_growth(benchmark::State &state) {
  constexpr size_t kPage = 4096;
  constexpr size_t kMiB = size_t{1} << 20;
  const size_t final_size = static_cast<size_t>(state.range(0)) * kMiB;
  auto touch = [](char *p, size_t size) {
    for (size_t offset = 0; offset < size; offset += kPage) p[offset] = 1;
    benchmark::ClobberMemory();  // the stores must happen although the block is freed
  };

  for (auto _ : state) {
    size_t size = kMiB;
    char *p = static_cast<char *>(malloc(size));
    while (p != nullptr) {
      touch(p, size);
      if (size == final_size) break;
      size *= 2;
      char *grown = static_cast<char *>(realloc(p, size));
      if (grown == nullptr) free(p);
      p = grown;
    }
    if (p == nullptr) {
      state.SkipWithError("out of memory");
      break;
    }
    free(p);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("chain");
}

// Registers the benchmarks in the order of scripts/bench's table; `iterations` 0 means
// "as many as fill the minimum time" (Google Benchmark's default).
void register_benchmarks(int64_t iterations) {
  auto single_threaded = [iterations](const char *name, void (*function)(benchmark::State &)) {
    benchmark::internal::Benchmark *b = benchmark::RegisterBenchmark(name, function);
    if (iterations > 0) b->Iterations(iterations);
    return b->UseRealTime();
  };
  single_threaded("small_pairs", small_pairs)->Arg(16)->Arg(64)->Arg(256);
  single_threaded("new_delete", new_delete);
  single_threaded("sliding_window", sliding_window);
  if (iterations == 0) {
    benchmark::RegisterBenchmark("producer_consumer", producer_consumer)->UseRealTime();
    benchmark::RegisterBenchmark("larson", larson)->UseRealTime();
  }
  single_threaded("realloc_growth", realloc_growth)->Arg(256);
}

// Takes --iterations=N out of argv (Google Benchmark rejects flags it does not know).
// Returns N, 0 without the flag, -1 for a bad value.
int64_t take_iterations_flag(int &argc, char **argv) {
  constexpr char kFlag[] = "--iterations=";
  int64_t iterations = 0;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    if (strncmp(argv[i], kFlag, sizeof kFlag - 1) != 0) {
      argv[kept++] = argv[i];
      continue;
    }
    char *end;
    iterations = strtoll(argv[i] + sizeof kFlag - 1, &end, 10);
    if (*end != '\0' || iterations <= 0) return -1;
  }
  argc = kept;
  argv[argc] = nullptr;
  return iterations;
}

}  // namespace

int main(int argc, char **argv) {
  const int64_t iterations = take_iterations_flag(argc, argv);
  if (iterations < 0) {
    fprintf(stderr, "alloc_bench: --iterations wants a positive count\n");
    return 2;
  }
  register_benchmarks(iterations);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
