// config.h: ALLOCSCOPE_CONF and allocscope_config().
//
// Grammar (jemalloc's MALLOC_CONF style): "key:value,key:value". Keys are
// case-insensitive; surrounding blanks are ignored. Booleans are true/false (also
// 1/0, yes/no, on/off); sizes are decimal with an optional K, M or G suffix (powers of
// 1024); durations are milliseconds; flags are names joined by | (flags.h). A bad pair
// never brings the host down: it is reported in one line naming the source, the key, the
// value and what is accepted, and every other pair still applies. With strict:true (from
// this or an earlier configuration) a bad pair is fatal instead: the report is followed
// by abort().
//
// Keys (README.md has the table with defaults):
//   policy, limit, arena_limit, emergency, max_size, nofail_max, nofail_overdraw_ms,
//   retry_max, nofail_in_nowait, stall_warn_ms, warn, warn_burst, kv_threshold, kv_direct,
//   kv_guard, kv_window, nowait_reserve, strict, stats_print, stats_file, log_file
#pragma once

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <string_view>

#include "flags.h"
#include "resolve.h"

namespace allocscope {

// Every field is read on allocation slow paths while allocscope_config() may write it,
// hence the atomics (relaxed: each value stands alone). Constant-initialised: valid
// before any constructor runs, and until the last exit handler.
struct Config {
  std::atomic<bool> strict{false};
  std::atomic<bool> warn{true};  // failure reports (NOWARN silences one allocation)
  std::atomic<bool> stats_print{false};
  std::atomic<Flags> policy{kPolicyNormal};  // the process default scope flags
  std::atomic<size_t> max_size{static_cast<size_t>(PTRDIFF_MAX)};
  std::atomic<size_t> nofail_max{static_cast<size_t>(INT_MAX)};
  std::atomic<uint64_t> nofail_overdraw_ms{0};  // 0 = never overdraw
  std::atomic<unsigned> retry_max{16};
  std::atomic<ConflictAction> nofail_in_nowait{ConflictAction::kWait};
  std::atomic<uint64_t> stall_warn_ms{10000};
  std::atomic<unsigned> warn_burst{10};  // reports per 5 s (warn_alloc's ratelimit); 0 = all
  std::atomic<size_t> kv_threshold{64 << 10};  // KV allocations from this size may use regions
  std::atomic<size_t> kv_direct{0};            // KV allocations from this size skip the arena
  // Written by apply_config (under its lock) and read at exit.
  char stats_file[PATH_MAX] = "";
  char log_file[PATH_MAX] = "";
};

extern Config g_config;

// Applies `text` to g_config. `source` names it in reports ("ALLOCSCOPE_CONF",
// "allocscope_config"). Returns the number of bad pairs (0 = all applied).
int apply_config(std::string_view text, const char *source);

// Parses a size with an optional K/M/G suffix; false if `text` is not one or overflows.
bool parse_size(std::string_view text, size_t *out);

// Parses true/false, 1/0, yes/no, on/off (any case).
bool parse_bool(std::string_view text, bool *out);

// Fork: apply_config's lock is held across fork() and released on both sides.
void config_prefork();
void config_postfork();

}  // namespace allocscope
