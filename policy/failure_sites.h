// failure_sites.h: where allocations failed: a small fixed table of call sites
// ("module+0xoffset", callsite.h) with a count per policy, for the stats' top call sites.
//
// Filled on the engine's failure path only (a failure already costs a report and a
// backtrace); read without a lock, so the exit-signal handler may print it. The name is
// formatted when a site first fails, so readers never call into the loader.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

#include "resolve.h"

namespace allocscope {
namespace failure_sites {

inline constexpr int kSites = 64;  // distinct sites kept; later ones count as "other"
inline constexpr int kTop = 5;     // the stats list this many

struct Site {
  std::atomic<uintptr_t> addr;  // the return address; 0 = free
  std::atomic<bool> named;      // name is written
  char name[120];
  std::atomic<uint64_t> failures[5];  // by Contract
};

// One failure at `callsite` under `contract`.
void record(const void *callsite, Contract contract);

// The kTop sites with the most failures, most first; returns how many (<= kTop). `other`
// gets the failures at sites the table had no room for.
int top(const Site *out[kTop], uint64_t *other);

uint64_t total(const Site &site);

}  // namespace failure_sites
}  // namespace allocscope
