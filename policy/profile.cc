// profile.cc: see profile.h.
#include "profile.h"

#include "backend.h"

namespace allocscope {
namespace profile {

Refusal dump() {
  bool on = false;
  size_t len = sizeof(on);
  if (je_mallctl("opt.prof", &on, &len, nullptr, 0) != 0)
    return "this jemalloc has no heap profiler";
  if (!on)
    return "jemalloc's profiler is off: start the process with allocscope run --profile (or "
           "MALLOC_CONF=prof:true)";
  if (je_mallctl("prof.dump", nullptr, nullptr, nullptr, 0) != 0)
    return "jemalloc could not write the profile (its prof_prefix directory?)";
  return nullptr;
}

}  // namespace profile
}  // namespace allocscope
