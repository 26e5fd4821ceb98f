// timeline.h: timeline_file: the charge and resident memory over time against the limit,
// with failures, reclaim passes and NOFAIL waits marked, written at exit (and by the exit
// signals' handler) as one self-contained HTML page with an inline SVG plot.
//
// Samples are taken at the preload's events (observe.h), at most every observe::kRefreshMs,
// into a fixed buffer of kSamples: when it is full, every other sample goes and samples
// are taken half as often, so memory stays bounded and the whole run stays covered. Each
// sample keeps the counts of failures, reclaim passes and waits so far: the page marks
// where they grew. An idle process takes no samples (nothing happens to plot): the lines
// join its samples across the quiet time.
#pragma once

#include <stdint.h>

namespace allocscope {
namespace timeline {

inline constexpr int kSamples = 4096;

// `always`: whatever the spacing (the last sample, at exit).
void sample(uint64_t now_ns, bool always = false);
// Writes the page to timeline_file, if set (at exit; `signal` as in stats_json.h).
void write(int signal);

}  // namespace timeline
}  // namespace allocscope
