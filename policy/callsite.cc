// callsite.cc: see callsite.h.
#include "callsite.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <sched.h>
#include <stdio.h>
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
using callsite_detail::kNoModule;
using callsite_detail::kRetired;

// ---- Module names, copied: append-only, so a name once handed out stays valid ----

constexpr uint32_t kModules = 2048;
constexpr uint32_t kNameBytes = 256 * 1024;

struct Module {
  std::atomic<bool> ready;  // name_at and file_at are written
  uint32_t name_at;         // offset of the path in g_names
  uint32_t file_at;         // offset of its file name
};
Module g_modules[kModules];
std::atomic<uint32_t> g_module_count{0};
char g_names[kNameBytes];
std::atomic<uint32_t> g_names_used{0};

// The id of a module path, added if new (kNoModule once the table is full). Two threads
// adding the same new path may both add it: a wasted slot, never a wrong name.
uint32_t intern(const char *path) {
  const uint32_t count = g_module_count.load(std::memory_order_acquire);
  for (uint32_t i = 0; i < count && i < kModules; ++i)
    if (g_modules[i].ready.load(std::memory_order_acquire) &&
        strcmp(g_names + g_modules[i].name_at, path) == 0)
      return i;
  const size_t len = strlen(path) + 1;
  if (len > PATH_MAX) return kNoModule;
  const uint32_t at = g_names_used.fetch_add(static_cast<uint32_t>(len));
  if (at + len > kNameBytes) return kNoModule;
  memcpy(g_names + at, path, len);
  const uint32_t id = g_module_count.fetch_add(1);
  if (id >= kModules) return kNoModule;
  const char *slash = strrchr(g_names + at, '/');
  g_modules[id].name_at = at;
  g_modules[id].file_at = slash != nullptr ? static_cast<uint32_t>(slash + 1 - g_names) : at;
  g_modules[id].ready.store(true, std::memory_order_release);
  return id;
}

// The main program by the real path of its file: it was started as "", argv[0], ./prog or
// a symbolic link (python3), and its real path is what a symboliser opens and what
// fault.callsite names.
uint32_t main_program_id() {
  static std::atomic<uint32_t> id{kNoModule};
  uint32_t known = id.load(std::memory_order_acquire);
  if (known != kNoModule) return known;
  char path[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (n > 0) {
    path[n] = '\0';
  } else {  // no /proc: the name it was executed by
    const char *execfn = reinterpret_cast<const char *>(getauxval(AT_EXECFN));
    snprintf(path, sizeof(path), "%s", execfn != nullptr ? execfn : "?");
  }
  known = intern(path);
  id.store(known, std::memory_order_release);
  return known;
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

// The object a return address lies in, by dladdr (the loader's lock).
struct Where {
  uint32_t module_id;
  uintptr_t base;
};

Where locate(const void *ret) {
  Dl_info info;
  // A return address points after the call; -1 keeps it inside the calling instruction.
  if (dladdr(static_cast<const char *>(ret) - 1, &info) == 0 || info.dli_fname == nullptr)
    return {kNoModule, 0};
  const bool main = info.dli_fbase == main_program_base() || info.dli_fname[0] == '\0';
  return {main ? main_program_id() : intern(info.dli_fname),
          reinterpret_cast<uintptr_t>(info.dli_fbase)};
}

// Starts at 1: an entry's epoch 0 means "being filled".
std::atomic<uint32_t> g_epoch{1};

void fill(CallSite &s, const void *ret) {
  const uint32_t epoch = g_epoch.load(std::memory_order_acquire);  // before dladdr
  const Where w = locate(ret);
  s.module_id = w.module_id;
  s.base = w.base;
  s.epoch.store(epoch, std::memory_order_release);
}

// The entry if it still describes its address, nullptr if it is retired.
CallSite *valid(CallSite &s, const void *ret) {
  uint32_t e;
  while ((e = s.epoch.load(std::memory_order_acquire)) == 0) sched_yield();  // being filled
  const uint32_t now = g_epoch.load(std::memory_order_acquire);
  if (e == now) return &s;
  if (e == kRetired) return nullptr;
  // Filled before something was unloaded: the same object at the same base, or retired.
  const Where w = locate(ret);
  const bool same = w.module_id == s.module_id && w.base == s.base && w.module_id != kNoModule;
  s.epoch.compare_exchange_strong(e, same ? now : kRetired);  // the first to decide wins
  return s.epoch.load(std::memory_order_acquire) == kRetired ? nullptr : &s;
}

}  // namespace

const char *CallSite::path() const {
  if (module_id >= kModules) return "?";
  return g_names + g_modules[module_id].name_at;
}

const char *CallSite::module() const {
  if (module_id >= kModules) return "?";
  return g_names + g_modules[module_id].file_at;
}

bool CallSite::known() const { return module_id < kModules; }

const char *CallSite::name(char *buf, size_t len) const {
  if (known()) snprintf(buf, len, "%s+0x%zx", module(), static_cast<size_t>(offset()));
  else snprintf(buf, len, "%p", reinterpret_cast<void *>(addr.load(std::memory_order_relaxed)));
  return buf;
}

CallSite *call_site(const void *ret) {
  const uintptr_t key = reinterpret_cast<uintptr_t>(ret);
  size_t slot = fibonacci_slot(key, 13);  // kEntries
  for (size_t probe = 0; probe < 64;) {
    CallSite &s = g_entries[slot];
    uintptr_t current = s.addr.load(std::memory_order_acquire);
    if (current == 0) {
      if (!s.addr.compare_exchange_strong(current, key)) continue;  // look at it again
      fill(s, ret);
      return &s;
    }
    if (current == key) {
      if (CallSite *found = valid(s, ret)) return found;
    }
    ++probe;
    slot = (slot + 1) % kEntries;
  }
  return nullptr;
}

const char *format_call_site(const void *ret, char *buf, size_t len) {
  if (const CallSite *s = call_site(ret)) return s->name(buf, len);
  // The table is full: the same name, uncached.
  const Where w = locate(ret);
  if (w.module_id >= kModules) {
    snprintf(buf, len, "%p", ret);
  } else {
    snprintf(buf, len, "%s+0x%zx", g_names + g_modules[w.module_id].file_at,
             static_cast<size_t>(reinterpret_cast<uintptr_t>(ret) - 1 - w.base));
  }
  return buf;
}

bool call_site_parts(const void *ret, const char **module, uintptr_t *offset) {
  if (const CallSite *s = call_site(ret)) {
    if (!s->known()) return false;
    *module = s->module();
    *offset = s->offset();
    return true;
  }
  const Where w = locate(ret);
  if (w.module_id >= kModules) return false;
  *module = g_names + g_modules[w.module_id].file_at;
  *offset = reinterpret_cast<uintptr_t>(ret) - 1 - w.base;
  return true;
}

void loader_changed() {
  static std::atomic<unsigned long long> seen_subs{0};
  unsigned long long subs = 0;
  dl_iterate_phdr(
      [](dl_phdr_info *info, size_t size, void *arg) {
        if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs))
          *static_cast<unsigned long long *>(arg) = info->dlpi_subs;
        return 1;  // the counters are the same in every object's record: one is enough
      },
      &subs);
  if (seen_subs.exchange(subs) != subs) g_epoch.fetch_add(1, std::memory_order_acq_rel);
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
