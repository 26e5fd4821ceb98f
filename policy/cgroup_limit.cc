// cgroup_limit.cc: see cgroup_limit.h.
#include "cgroup_limit.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

namespace allocscope {
namespace {

// The whole of a small file into buf (NUL-terminated); false if it cannot be read.
bool read_small_file(const char *path, char *buf, size_t cap) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  size_t used = 0;
  for (ssize_t n; used + 1 < cap && (n = read(fd, buf + used, cap - 1 - used)) != 0;) {
    if (n < 0) {
      close(fd);
      return false;
    }
    used += static_cast<size_t>(n);
  }
  close(fd);
  buf[used] = '\0';
  return true;
}

// A limit file's value: a number of bytes, or none ("max"; v1's unlimited is a page-rounded
// 2^63 - 1). false if the file does not exist or holds neither.
bool read_limit_file(const char *dir, const char *name, uint64_t *bytes) {
  char path[PATH_MAX], text[64];
  if (static_cast<size_t>(snprintf(path, sizeof(path), "%s/%s", dir, name)) >= sizeof(path) ||
      !read_small_file(path, text, sizeof(text)))
    return false;
  if (strncmp(text, "max", 3) == 0) return *bytes = 0, true;
  uint64_t n = 0;
  const char *c = text;
  for (; *c >= '0' && *c <= '9'; ++c) n = n * 10 + static_cast<uint64_t>(*c - '0');
  if (c == text) return false;
  *bytes = n >= (uint64_t{1} << 62) ? 0 : n;
  return true;
}

// The lower of two limits, 0 meaning none.
uint64_t lower(uint64_t a, uint64_t b) { return a == 0 ? b : b == 0 ? a : a < b ? a : b; }

// One line of /proc/self/mountinfo: its root, mount point and whether it is a cgroup2
// mount, or a v1 cgroup mount with the memory controller.
struct Mount {
  char root[PATH_MAX], point[PATH_MAX];
  bool v2, v1_memory;
};

// Splits the next space-separated field off *line (mountinfo fields have no spaces: they
// are escaped as \040, which cgroup paths do not contain).
const char *field(char **line) {
  char *start = *line;
  while (**line != ' ' && **line != '\n' && **line != '\0') ++*line;
  if (**line != '\0') *(*line)++ = '\0';
  return start;
}

bool parse_mount(char *line, Mount *m) {
  const char *f[10];
  for (int i = 0; i < 6; ++i) f[i] = field(&line);  // id parent dev root point options
  const char *rest;
  do rest = field(&line); while (*rest != '\0' && strcmp(rest, "-") != 0);  // optional fields
  if (*rest == '\0') return false;
  const char *fstype = field(&line);
  field(&line);  // source
  const char *super = field(&line);
  snprintf(m->root, sizeof(m->root), "%s", f[3]);
  snprintf(m->point, sizeof(m->point), "%s", f[4]);
  m->v2 = strcmp(fstype, "cgroup2") == 0;
  m->v1_memory = strcmp(fstype, "cgroup") == 0 &&
                 (strstr(super, ",memory") != nullptr || strncmp(super, "memory", 6) == 0);
  return m->v2 || m->v1_memory;
}

// The process's cgroup path in the v1 memory hierarchy (`v1`) or in the v2 one.
bool cgroup_path(bool v1, char *out, size_t cap) {
  char text[4096];
  if (!read_small_file("/proc/self/cgroup", text, sizeof(text))) return false;
  for (char *line = text; *line != '\0';) {
    char *end = strchr(line, '\n');
    if (end != nullptr) *end = '\0';
    char *first = strchr(line, ':');
    char *second = first != nullptr ? strchr(first + 1, ':') : nullptr;
    if (second != nullptr) {
      *second = '\0';
      const char *controllers = first + 1;
      const bool match = v1 ? (strcmp(controllers, "memory") == 0 ||
                               strstr(controllers, "memory,") != nullptr ||
                               (strlen(controllers) > 7 &&
                                strcmp(controllers + strlen(controllers) - 7, ",memory") == 0))
                            : *controllers == '\0' && strncmp(line, "0", 1) == 0;
      if (match) return static_cast<size_t>(snprintf(out, cap, "%s", second + 1)) < cap;
    }
    if (end == nullptr) break;
    line = end + 1;
  }
  return false;
}

// The directory of the process's cgroup under a mount, and the mount point; false if the
// cgroup lies outside what the mount shows.
bool locate(bool v1, char *dir, size_t cap, char *top, size_t top_cap) {
  char path[PATH_MAX];
  if (!cgroup_path(v1, path, sizeof(path))) return false;
  char text[16384];
  if (!read_small_file("/proc/self/mountinfo", text, sizeof(text))) return false;
  for (char *line = text; *line != '\0';) {
    char *end = strchr(line, '\n');
    if (end != nullptr) *end = '\0';
    Mount m;
    if (parse_mount(line, &m) && (v1 ? m.v1_memory : m.v2)) {
      const size_t root_len = strcmp(m.root, "/") == 0 ? 0 : strlen(m.root);
      if (strncmp(path, m.root, root_len) == 0) {
        snprintf(top, top_cap, "%s", m.point);
        return static_cast<size_t>(snprintf(dir, cap, "%s%s", m.point, path + root_len)) < cap;
      }
    }
    if (end == nullptr) break;
    line = end + 1;
  }
  return false;
}

}  // namespace

bool read_cgroup_dir_limit(const char *dir, uint64_t *bytes) {
  uint64_t max = 0, high = 0, v1 = 0;
  const bool has_max = read_limit_file(dir, "memory.max", &max);
  const bool has_high = read_limit_file(dir, "memory.high", &high);
  const bool has_v1 = read_limit_file(dir, "memory.limit_in_bytes", &v1);
  if (!has_max && !has_high && !has_v1) return false;
  *bytes = lower(lower(max, high), v1);
  return true;
}

bool read_cgroup_limit(const char *dir_override, CgroupLimit *out) {
  *out = CgroupLimit{};
  if (dir_override != nullptr && dir_override[0] != '\0') {
    snprintf(out->dir, sizeof(out->dir), "%s", dir_override);
    out->controller = read_cgroup_dir_limit(out->dir, &out->bytes);
    return out->controller;
  }
  char top[PATH_MAX];
  if (!locate(true, out->dir, sizeof(out->dir), top, sizeof(top)) &&
      !locate(false, out->dir, sizeof(out->dir), top, sizeof(top)))
    return false;
  // The lowest limit from the process's cgroup up to the hierarchy's root.
  char dir[PATH_MAX];
  snprintf(dir, sizeof(dir), "%s", out->dir);
  for (;;) {
    uint64_t bytes;
    if (read_cgroup_dir_limit(dir, &bytes)) {
      out->controller = true;
      out->bytes = lower(out->bytes, bytes);
    }
    if (strcmp(dir, top) == 0) break;
    char *slash = strrchr(dir, '/');
    if (slash == nullptr || slash == dir || strlen(dir) <= strlen(top)) break;
    *slash = '\0';
  }
  return out->controller;
}

}  // namespace allocscope
