// failure_sites.cc: see failure_sites.h.
#include "failure_sites.h"

#include "callsite.h"

namespace allocscope {
namespace failure_sites {
namespace {

Site g_sites[kSites];
std::atomic<uint64_t> g_other{0};

}  // namespace

void record(const void *callsite, Contract contract) {
  const uintptr_t key = reinterpret_cast<uintptr_t>(callsite);
  const int c = static_cast<int>(contract);
  for (Site &s : g_sites) {
    uintptr_t addr = s.addr.load(std::memory_order_acquire);
    if (addr == 0) {
      if (!s.addr.compare_exchange_strong(addr, key)) {
        if (addr != key) continue;  // another thread took the slot for another site
      } else {
        format_call_site(callsite, s.name, sizeof(s.name));
        s.named.store(true, std::memory_order_release);
      }
    } else if (addr != key) {
      continue;
    }
    s.failures[c].fetch_add(1, std::memory_order_relaxed);
    return;
  }
  g_other.fetch_add(1, std::memory_order_relaxed);
}

uint64_t total(const Site &site) {
  uint64_t n = 0;
  for (const auto &f : site.failures) n += f.load(std::memory_order_relaxed);
  return n;
}

int top(const Site *out[kTop], uint64_t *other) {
  int n = 0;
  for (const Site &s : g_sites) {
    if (!s.named.load(std::memory_order_acquire)) continue;
    const uint64_t count = total(s);
    if (count == 0) continue;
    // Insertion into the sorted list of at most kTop.
    int at = n < kTop ? n++ : kTop;
    while (at > 0 && total(*out[at - 1]) < count) {
      if (at < kTop) out[at] = out[at - 1];
      --at;
    }
    if (at < kTop) out[at] = &s;
  }
  *other = g_other.load(std::memory_order_relaxed);
  return n;
}

}  // namespace failure_sites
}  // namespace allocscope
