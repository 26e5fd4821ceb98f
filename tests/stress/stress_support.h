// stress_support.h: what both stress programs need: failing loudly, a clock, a seeded
// random generator. Nothing here allocates (die() writes with write(2)).
#pragma once

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
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

// A block's contents: a pattern derived from a seed, written and verified by range.
inline uint64_t word_of(uint64_t seed, size_t k) { return seed ^ (k * 0x9E3779B97F4A7C15ull); }

inline void fill(void *p, size_t from, size_t to, uint64_t seed) {
  auto *b = static_cast<unsigned char *>(p);
  size_t i = from;
  for (; i < to && (i & 7) != 0; ++i) b[i] = static_cast<unsigned char>(word_of(seed, i >> 3) >> (8 * (i & 7)));
  for (; i + 8 <= to; i += 8) {
    const uint64_t w = word_of(seed, i >> 3);
    memcpy(b + i, &w, 8);
  }
  for (; i < to; ++i) b[i] = static_cast<unsigned char>(word_of(seed, i >> 3) >> (8 * (i & 7)));
}

inline bool check_range(const void *p, size_t from, size_t to, uint64_t seed) {
  const auto *b = static_cast<const unsigned char *>(p);
  size_t i = from;
  for (; i < to && (i & 7) != 0; ++i)
    if (b[i] != static_cast<unsigned char>(word_of(seed, i >> 3) >> (8 * (i & 7)))) return false;
  for (; i + 8 <= to; i += 8) {
    uint64_t w;
    memcpy(&w, b + i, 8);
    if (w != word_of(seed, i >> 3)) return false;
  }
  for (; i < to; ++i)
    if (b[i] != static_cast<unsigned char>(word_of(seed, i >> 3) >> (8 * (i & 7)))) return false;
  return true;
}

// Whole blocks up to 256 KiB; larger ones: the first and last 16 KiB and one word per page.
inline bool check(const void *p, size_t from, size_t to, uint64_t seed) {
  if (to - from <= 256 * 1024) return check_range(p, from, to, seed);
  if (!check_range(p, from, from + 16 * 1024, seed) || !check_range(p, to - 16 * 1024, to, seed))
    return false;
  for (size_t i = (from + 16 * 1024) & ~size_t{7}; i + 8 <= to - 16 * 1024; i += 4096)
    if (!check_range(p, i, i + 8, seed)) return false;
  return true;
}

inline bool all_zero(const void *p, size_t n) {
  const auto *b = static_cast<const unsigned char *>(p);
  for (size_t i = 0; i < n; ++i)
    if (b[i] != 0) return false;
  return true;
}

// Blocks that travel between threads (exchange, caches) carry their size and seed in a
// 16-byte header, so whoever frees them can check them.
struct Header {
  uint64_t size;
  uint64_t seed;
};

inline void tag(void *p, size_t size, uint64_t seed) {
  Header h{size, seed};
  memcpy(p, &h, sizeof(h));
  fill(p, sizeof(h), size, seed);
}

// Checks a tagged block of at most max_size bytes; returns its size.
inline size_t check_tag(void *p, size_t max_size, const char *what) {
  Header h;
  memcpy(&h, p, sizeof(h));
  CHECK(h.size >= sizeof(Header) && h.size <= max_size, "%s block %p: bad header size %llu",
        what, p, static_cast<unsigned long long>(h.size));
  CHECK(check_range(p, sizeof(h), h.size, h.seed), "%s block %p (%llu bytes): pattern damaged",
        what, p, static_cast<unsigned long long>(h.size));
  return h.size;
}

}  // namespace stress
