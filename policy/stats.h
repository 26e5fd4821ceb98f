// stats.h: allocscope's statistics as one JSON object.
//
// The object is what allocscope_stats_json() returns and what stats_print/stats_file
// write at exit:
//   {"allocscope":{"version":"…","pid":N,
//     "heap":{"allocated":N,"active":N,"resident":N,"mapped":N,"retained":N,
//             "metadata":N,"dirty":N,"nmalloc":N,"ndalloc":N}}}
// "heap" is jemalloc's view of the whole process (see heap_stats.h). Formatting never
// allocates, so it works from exit handlers and on failing allocation paths.
#pragma once

#include <cstddef>

namespace allocscope {

// snprintf semantics: writes at most len bytes including the NUL, returns the length
// the whole object needs (so a caller can size its buffer), or -1 on an error.
int stats_json(char *buf, size_t len);

// At exit: prints the stats on the report stream if stats_print, writes stats_file if set.
void write_exit_stats();

}  // namespace allocscope
