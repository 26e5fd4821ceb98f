// live_page_format.h: the layout of the live page (live_page.h), shared by the preload,
// which writes it, and the allocscope command (top, stats, ctl), which reads it and posts
// requests. One file per process, DIR/PID.page, in the per-user directory below.
//
// Change the layout only with a new kVersion: a command refuses a page whose version it does
// not know, in one line, rather than misread it.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <atomic>

namespace allocscope {
namespace live {

inline constexpr uint32_t kMagic = 0x50534c41;  // "ALSP" in memory order
inline constexpr uint32_t kVersion = 1;

// The request slot's states. The command posts (kIdle -> kPosted); the target takes it at
// its next event (kPosted -> kTaken), applies it and answers (kDone); the command reads the
// answer and frees the slot (kIdle). A command that gives up withdraws a request nobody
// took (kPosted -> kIdle); one already taken it waits for.
enum RequestState : uint32_t { kIdle = 0, kPosted = 1, kTaken = 2, kDone = 3 };

struct Page {
  // Written once, before the file is renamed into place.
  uint32_t magic;
  uint32_t version;
  int32_t pid;
  uint32_t uid;
  uint64_t start_ticks;    // /proc/PID/stat's starttime: tells a reused pid from ours
  uint64_t started_unix_ms;
  char comm[32];           // /proc/self/comm at start

  // Refreshed at the events, at most every observe::kRefreshMs (relaxed: each stands alone).
  std::atomic<uint64_t> updated_unix_ms;
  std::atomic<uint64_t> limit;
  std::atomic<uint64_t> charged;  // the budget's estimate (budget.h: charged_estimate)
  std::atomic<uint64_t> peak;
  std::atomic<uint64_t> peak_at_ms;  // since start
  std::atomic<uint64_t> rss;
  std::atomic<uint64_t> failures;
  std::atomic<uint64_t> reclaim_passes;
  std::atomic<uint64_t> waits;
  std::atomic<uint64_t> events;   // ticks so far: a command sees the process is alive here

  // The request slot (ctl): ALLOCSCOPE_CONF text in, the target's error lines out.
  std::atomic<uint32_t> request_state;
  std::atomic<int32_t> request_bad;  // bad pairs (0 = all applied)
  char request[2048];
  char reply[2048];

  // The stats as text, refreshed less often (a seqlock: odd while being written; a reader
  // copies and checks that it did not move).
  std::atomic<uint64_t> text_seq;
  char json[12288];
  char summary[4096];
};

inline constexpr size_t kPageBytes = (sizeof(Page) + 4095) / 4096 * 4096;

}  // namespace live
}  // namespace allocscope
