// callsite.cc: see callsite.h.
#include "callsite.h"

#include <dlfcn.h>
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "hash.h"

namespace allocscope {
namespace callsite_detail {
CallSite g_entries[kEntries];
}  // namespace callsite_detail

namespace {

using callsite_detail::g_entries;
using callsite_detail::kEntries;

// The main program is named as it was started ("", argv[0] or ./prog): its real path is
// what a symboliser can open.
const char *main_program_path() {
  static char path[PATH_MAX];
  static std::atomic<bool> done{false};
  if (!done.load(std::memory_order_acquire)) {
    const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    path[n > 0 ? n : 0] = '\0';
    done.store(true, std::memory_order_release);
  }
  return path;
}

// The main program's load base: the object that holds its program headers.
const void *main_program_base() {
  static std::atomic<const void *> base{nullptr};
  const void *b = base.load(std::memory_order_acquire);
  if (b == nullptr) {
    Dl_info info;
    if (dladdr(reinterpret_cast<const void *>(getauxval(AT_PHDR)), &info) != 0)
      b = info.dli_fbase;
    base.store(b, std::memory_order_release);
  }
  return b;
}

void fill(CallSite &s, const void *ret) {
  Dl_info info;
  const bool found =
      dladdr(static_cast<const char *>(ret) - 1, &info) != 0 && info.dli_fname != nullptr;
  s.path = !found ? "?" : info.dli_fbase == main_program_base() ? main_program_path()
                                                                : info.dli_fname;
  s.base.store(found ? reinterpret_cast<uintptr_t>(info.dli_fbase) : 1,
               std::memory_order_release);
}

CallSite &ready(CallSite &s) {
  while (s.base.load(std::memory_order_acquire) == 0) sched_yield();  // being filled in
  return s;
}

}  // namespace

const char *CallSite::module() const {
  const char *slash = strrchr(path, '/');
  return slash != nullptr ? slash + 1 : path;
}

CallSite *call_site(const void *ret) {
  const uintptr_t key = reinterpret_cast<uintptr_t>(ret);
  size_t slot = fibonacci_slot(key, 13);  // kEntries
  for (size_t probe = 0; probe < 64; ++probe, slot = (slot + 1) % kEntries) {
    CallSite &s = g_entries[slot];
    uintptr_t current = s.addr.load(std::memory_order_acquire);
    if (current == key) return &ready(s);
    if (current != 0) continue;
    if (s.addr.compare_exchange_strong(current, key)) {
      fill(s, ret);
      return &s;
    }
    if (current == key) return &ready(s);
  }
  return nullptr;
}

bool module_in(const char *module, const char *list) {
  for (const char *p = list; *p != '\0';) {
    const char *end = strchr(p, '|');
    const size_t n = end != nullptr ? static_cast<size_t>(end - p) : strlen(p);
    if (n != 0 && strncmp(module, p, n) == 0) return true;
    if (end == nullptr) break;
    p = end + 1;
  }
  return false;
}

}  // namespace allocscope
