// control_api.cc: the C API of shim/allocscope.h as the preload implements it. The
// client library in shim/ defines the same names as no-ops; under the preload these
// definitions come first in the lookup scope and win.
#include <errno.h>

#include "backend.h"
#include "config.h"
#include "stats.h"
#include "version.h"

AS_EXPORT int allocscope_active(void) { return 1; }

AS_EXPORT const char *allocscope_version(void) { return allocscope::kVersion; }

AS_EXPORT int allocscope_stats_json(char *buf, size_t len) {
  return allocscope::stats_json(buf, len);
}

AS_EXPORT int allocscope_config(const char *conf) {
  if (conf == nullptr) return -EINVAL;
  return allocscope::apply_config(conf, "allocscope_config") == 0 ? 0 : -EINVAL;
}
