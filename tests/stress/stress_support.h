// stress_support.h: what both stress programs need: failing loudly, a clock, a seeded
// random generator. Nothing here allocates (die() writes with write(2)).
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

namespace stress {

// "PROGRAM: FAIL: message" on stderr, then abort().
[[noreturn]] __attribute__((format(printf, 1, 2))) inline void die(const char *fmt, ...) {
  char line[1024];
  int n = snprintf(line, sizeof(line), "%s: FAIL: ", program_invocation_short_name);
  if (n < 0) n = 0;
  va_list ap;
  va_start(ap, fmt);
  const int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
  va_end(ap);
  n += m < 0 ? 0 : m;
  if (n > static_cast<int>(sizeof(line)) - 2) n = sizeof(line) - 2;
  line[n++] = '\n';
  if (write(2, line, n) < 0) {
  }
  abort();
}

#define CHECK(cond, ...)                   \
  do {                                     \
    if (!(cond)) stress::die(__VA_ARGS__); \
  } while (0)

inline uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// xorshift64*: deterministic for a seed, cheap, no allocation.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {
    if (s == 0) s = 1;
  }
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }
  uint64_t between(uint64_t lo, uint64_t hi) { return lo + below(hi - lo + 1); }
  bool percent(unsigned p) { return below(100) < p; }
};

}  // namespace stress
