// stats_summary.h: the stats as a short table a person reads in five seconds
// (stats_print:summary, `allocscope run --stats`, `allocscope stats PID`):
//
//   allocscope: summary: python3.11, pid 4242, 1.52 s
//   allocscope:   limit     64.0 MiB
//   allocscope:   peak      48.3 MiB (75 % of the limit) at 1.20 s; rss peak 61.2 MiB
//   allocscope:   now       12.0 MiB; rss 20.1 MiB
//   allocscope:   failures  2: normal 2
//   allocscope:               2  python3.11+0x1b2c3d (normal 2)
//   allocscope:   reclaim   0 passes, 0 B freed, 0 reclaimer calls
//   allocscope:   waits     nofail 0 (0 ms), stalls 0, overdraws 0
//   allocscope:   regions   0 (0 B); reserves 0 made, 0 exhausted
//
// (the "allocscope: " of each line is the report stream's). Formatted like the JSON
// (text_writer.h), so the exit-signal handler prints it too, then with a line naming the
// signal.
#pragma once

#include <stddef.h>

namespace allocscope {

// snprintf semantics, the lines joined by "\nallocscope: " and no final newline (the
// report stream adds "allocscope: " before and a newline after). `signal` as stats_json's.
int stats_summary(char *buf, size_t len, int signal);

// "12.0 MiB", "512 B": a size as the summary prints it. Returns buf.
const char *format_size(size_t bytes, char *buf, size_t len);

}  // namespace allocscope
