// bench_support.h: the pieces the allocator benchmarks share: deterministic random
// numbers and block sizes, a lock-free single-producer/single-consumer ring, and a helper
// thread that works in lock-step with the benchmark thread. None of them allocates after
// construction, so a timed loop measures the allocator and nothing else.
#pragma once

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <thread>

namespace bench {

// xorshift64*: fast, allocation-free, and the same sequence on every run and allocator.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1Dull;
  }

  // Uniform enough in [lo, hi] for choosing sizes and slots.
  size_t between(size_t lo, size_t hi) { return lo + next() % (hi - lo + 1); }

 private:
  uint64_t state_;
};

// Block sizes in [lo, hi], drawn before the timed loop so that choosing one costs an
// array read. The sequence repeats every kLength sizes.
class SizeSequence {
 public:
  SizeSequence(size_t lo, size_t hi, uint64_t seed) {
    Rng rng(seed);
    for (uint32_t &size : sizes_) size = static_cast<uint32_t>(rng.between(lo, hi));
  }

  size_t next() { return sizes_[next_++ % kLength]; }

 private:
  static constexpr size_t kLength = 4096;
  uint32_t sizes_[kLength];
  size_t next_ = 0;
};

// Busy-waits until `ready()` holds. Both cores are busy in the threaded benchmarks, so a
// blocking wait would measure the scheduler; but the machine may be shared, so after a
// while of spinning we yield rather than starve the thread we wait for.
template <typename Pred>
void spin_until(Pred ready) {
  for (unsigned spins = 0; !ready(); ++spins) {
    if (spins < 1024) {
      _mm_pause();
    } else {
      std::this_thread::yield();
      spins = 0;
    }
  }
}

// A fixed-capacity ring of pointers from one producer thread to one consumer thread.
// The head and tail sit on their own cache lines so the two threads do not false-share.
template <size_t Capacity>
class SpscRing {
  static_assert((Capacity & (Capacity - 1)) == 0, "capacity must be a power of two");

 public:
  // False when the ring is full.
  bool try_push(void *p) {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail - head_.load(std::memory_order_acquire) == Capacity) return false;
    slots_[tail & (Capacity - 1)] = p;
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

  // Null when the ring is empty.
  void *try_pop() {
    const size_t head = head_.load(std::memory_order_relaxed);
    if (head == tail_.load(std::memory_order_acquire)) return nullptr;
    void *p = slots_[head & (Capacity - 1)];
    head_.store(head + 1, std::memory_order_release);
    return p;
  }

  void push(void *p) {
    spin_until([&] { return try_push(p); });
  }

 private:
  alignas(64) std::atomic<size_t> head_{0};  // next slot to pop; written by the consumer
  alignas(64) std::atomic<size_t> tail_{0};  // next slot to fill; written by the producer
  alignas(64) void *slots_[Capacity];
};

// A second thread that runs `work()` once per round, started by the benchmark thread and
// waited for at the end of the round. The thread is created and joined outside the timed
// loop; within it, starting and finishing a round is two atomic stores and a spin.
template <typename Work>
class LockstepThread {
 public:
  explicit LockstepThread(Work work) : work_(work), thread_([this] { run(); }) {}

  ~LockstepThread() {
    stop_.store(true, std::memory_order_release);
    thread_.join();
  }

  void start_round() { started_.fetch_add(1, std::memory_order_release); }

  void finish_round() {
    const uint64_t round = started_.load(std::memory_order_relaxed);
    spin_until([&] { return finished_.load(std::memory_order_acquire) == round; });
  }

 private:
  void run() {
    for (uint64_t done = 0;;) {
      spin_until([&] {
        return started_.load(std::memory_order_acquire) != done ||
               stop_.load(std::memory_order_acquire);
      });
      if (started_.load(std::memory_order_acquire) == done) return;  // stopped, no round
      work_();
      finished_.store(++done, std::memory_order_release);
    }
  }

  Work work_;
  alignas(64) std::atomic<uint64_t> started_{0};
  alignas(64) std::atomic<uint64_t> finished_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;  // last: it starts running run() as soon as it is constructed
};

}  // namespace bench
