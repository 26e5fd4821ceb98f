// cgroup_limit.h: the memory limit of the calling process's cgroup, for limit:cgroup.
//
// A cgroup never returns ENOMEM to malloc: memory.high throttles and memory.max (v1:
// memory.limit_in_bytes) OOM-kills. limit:cgroup[-HEADROOM] sets allocscope's limit that
// much below the cgroup's, so allocations fail before the kernel kills.
//
// The limit is the lowest one from the process's cgroup up to the hierarchy's root, as the
// kernel applies them: v2 memory.max and memory.high; v1 memory.limit_in_bytes (the v1
// memory controller is preferred where both are mounted, as on hosts whose cgroup2 mount
// has no memory controller). The cgroup is found from /proc/self/cgroup and the mount
// points in /proc/self/mountinfo. Nothing here allocates.
#pragma once

#include <limits.h>
#include <stdint.h>

namespace allocscope {

struct CgroupLimit {
  bool controller = false;  // a memory controller is visible
  uint64_t bytes = 0;       // the limit; 0 = none (the controller sets none)
  char dir[PATH_MAX] = "";  // the process's cgroup directory
};

// Reads the calling process's cgroup limit. `dir_override` (the test-only cgroup_dir key)
// reads the limit files of that directory alone instead. False if no memory controller is
// visible.
bool read_cgroup_limit(const char *dir_override, CgroupLimit *out);

// The limit of one cgroup directory (the lowest of its limit files), 0 = none; false if the
// directory has no limit file.
bool read_cgroup_dir_limit(const char *dir, uint64_t *bytes);

}  // namespace allocscope
