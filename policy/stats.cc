// stats.cc: see stats.h.
#include "stats.h"

#include <stdio.h>
#include <unistd.h>

#include "config.h"
#include "heap_stats.h"
#include "report.h"
#include "version.h"

namespace allocscope {

int stats_json(char *buf, size_t len) {
  HeapTotals h;
  read_heap_totals(&h);
  return snprintf(buf, len,
                  "{\"allocscope\":{\"version\":\"%s\",\"pid\":%d,"
                  "\"heap\":{\"allocated\":%zu,\"active\":%zu,\"resident\":%zu,"
                  "\"mapped\":%zu,\"retained\":%zu,\"metadata\":%zu,\"dirty\":%zu,"
                  "\"nmalloc\":%llu,\"ndalloc\":%llu}}}",
                  kVersion, static_cast<int>(getpid()), h.allocated, h.active, h.resident,
                  h.mapped, h.retained, h.metadata, h.dirty,
                  static_cast<unsigned long long>(h.nmalloc),
                  static_cast<unsigned long long>(h.ndalloc));
}

void write_exit_stats() {
  if (!g_config.stats_print && g_config.stats_file[0] == '\0') return;
  char json[4096];
  int n = stats_json(json, sizeof(json));
  if (n < 0 || static_cast<size_t>(n) >= sizeof(json)) {
    report("stats: the JSON did not fit in %zu bytes", sizeof(json));
    return;
  }
  if (g_config.stats_print) report("stats %s", json);
  if (g_config.stats_file[0] != '\0') {
    int fd = open_output_file(g_config.stats_file);
    if (fd < 0) {
      report("stats_file: cannot open '%s': errno %d", g_config.stats_file, -fd);
      return;
    }
    json[n++] = '\n';
    if (!write_all(fd, json, static_cast<size_t>(n)))
      report("stats_file: cannot write '%s'", g_config.stats_file);
    close(fd);
  }
}

}  // namespace allocscope
