// callsite.h: which module and offset a return address lies in, cached; and the one
// formatter of a code address, "module+0xoffset".
//
// A call site is named "module+0xoffset": the object's file name and the offset of
// (return address - 1) from its load base, so it stays inside the calling instruction and
// is the same in every run despite ASLR (addr2line -e MODULE 0xOFFSET gives the line; for
// a non-PIE executable add its first PT_LOAD address). The executable is named by the file
// name of its real path (python3.11, not the python3 it was started as), in backtraces,
// fault.log, fault.record and fault.callsite alike.
//
// dladdr takes the loader's lock, so answers are cached per return address in a fixed
// table: no allocation, safe inside malloc. Module names are copied into a table of our own
// (the loader frees its copy at dlclose). When an object is unloaded, another may later be
// loaded at the same addresses: loader_changed() (called by the preload's dlopen and dlclose)
// then starts a new loader epoch, and an entry filled in an earlier epoch is checked with
// dladdr again on its next use, and retired if its address now lies in another object. A
// retired entry keeps its count for fault.record.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

namespace allocscope {

struct CallSite {
  std::atomic<uintptr_t> addr;      // the return address (the key)
  std::atomic<uint32_t> epoch;      // loader epoch last found valid in; 0 while being filled
  uint32_t module_id;               // index in the module table (kNoModule: unknown)
  uintptr_t base;                   // the object's load base
  std::atomic<uint64_t> count;      // eligible allocations from here (fault.record)

  uintptr_t offset() const { return addr.load(std::memory_order_relaxed) - 1 - base; }
  const char *path() const;    // the object's path; the main program's real path; "?"
  const char *module() const;  // the file name of path
  bool known() const;
  // Writes "module+0xoffset" (or "0xADDR" if unknown); returns buf.
  const char *name(char *buf, size_t len) const;
};

// The entry for a return address; nullptr only if the table is full.
CallSite *call_site(const void *return_address);

// Writes "module+0xoffset" for a return address (through the cache), "0xADDR" if no object
// contains it. Returns buf.
const char *format_call_site(const void *return_address, char *buf, size_t len);

// The module file name and offset of a return address (through the cache, or uncached
// when the cache is full), as format_call_site() names it; false if no object holds it.
bool call_site_parts(const void *return_address, const char **module, uintptr_t *offset);

// Something may have been unloaded (after dlclose, before dlopen): if dl_iterate_phdr's
// count of unloads moved, entries are checked again before their next use.
void loader_changed();

// Calls fn for every known entry with a count, once per distinct "module+offset" (entries
// of a library loaded again elsewhere are summed), with that count (fault.record at exit).
template <typename Fn>
void for_each_counted_site(Fn fn);

// Is `module` (a file name) one of the |-separated prefixes in `list`?
bool module_in(const char *module, const char *list);

namespace callsite_detail {
inline constexpr size_t kEntries = 8192;
inline constexpr uint32_t kNoModule = UINT32_MAX;
inline constexpr uint32_t kRetired = UINT32_MAX;
extern CallSite g_entries[kEntries];
}  // namespace callsite_detail

template <typename Fn>
void for_each_counted_site(Fn fn) {
  using callsite_detail::g_entries;
  using callsite_detail::kEntries;
  auto counted = [](const CallSite &s) {
    return s.addr.load() != 0 && s.epoch.load() != 0 && s.known() && s.count.load() != 0;
  };
  for (size_t i = 0; i < kEntries; ++i) {
    const CallSite &s = g_entries[i];
    if (!counted(s)) continue;
    bool seen = false;  // an earlier entry has the same name: it was reported with this one
    uint64_t total = s.count.load();
    for (size_t j = 0; j < kEntries; ++j) {
      if (j == i) continue;
      const CallSite &o = g_entries[j];
      if (!counted(o) || o.module_id != s.module_id || o.offset() != s.offset()) continue;
      if (j < i) {
        seen = true;
        break;
      }
      total += o.count.load();
    }
    if (!seen) fn(s, total);
  }
}

}  // namespace allocscope
