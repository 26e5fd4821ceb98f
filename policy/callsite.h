// callsite.h: which module and offset a return address lies in, cached.
//
// A call site is named "module+0xoffset": the object's file name and the offset of
// (return address - 1) from its load base, so it stays inside the calling instruction and
// is the same in every run despite ASLR (addr2line -e MODULE 0xOFFSET gives the line; for
// a non-PIE executable add its first PT_LOAD address). dladdr takes the loader's lock, so
// answers are cached per return address in a fixed table: no allocation, safe inside
// malloc. Objects unloaded later (dlclose) keep stale entries; their addresses are not
// called from any more.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

namespace allocscope {

struct CallSite {
  std::atomic<uintptr_t> addr;  // the return address (the key)
  const char *path;             // the object's path; the main program's real path
  std::atomic<uintptr_t> base;  // its load base; 0 while being filled in, 1 if unknown
  std::atomic<uint64_t> count;  // eligible allocations from here (fault.record)

  uintptr_t offset() const { return addr.load() - 1 - base.load(); }
  const char *module() const;  // the file name of path
  bool known() const { return base.load() > 1; }
};

// The entry for a return address; nullptr only if the table is full.
CallSite *call_site(const void *return_address);

// Calls fn for every entry (fault.record at exit).
template <typename Fn>
void for_each_call_site(Fn fn);

// Is `module` (a file name) one of the |-separated prefixes in `list`?
bool module_in(const char *module, const char *list);

namespace callsite_detail {
inline constexpr size_t kEntries = 8192;
extern CallSite g_entries[kEntries];
}  // namespace callsite_detail

template <typename Fn>
void for_each_call_site(Fn fn) {
  for (CallSite &s : callsite_detail::g_entries)
    if (s.addr.load() != 0 && s.known()) fn(s);
}

}  // namespace allocscope
