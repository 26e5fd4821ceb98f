// event_hook.h: one hook for the moments the preload already has off the fast path: jemalloc's
// per-thread activity callback (every 64 KiB a thread allocates or frees, budget.cc) and
// the engine's failures (engine.cc). The live page (live_page.h) and the timeline
// (timeline.h) hang off it through observe.cc; with neither on, fire() is one load and a
// not-taken branch, on paths that never run per allocation below 64 KiB.
#pragma once

#include <atomic>

#include "compiler.h"

namespace allocscope {
namespace event_hook {

using Hook = void (*)();
extern std::atomic<Hook> g_hook AS_HIDDEN;

inline void fire() {
  if (const Hook hook = g_hook.load(std::memory_order_relaxed)) hook();
}
inline void set_hook(Hook hook) { g_hook.store(hook, std::memory_order_relaxed); }

}  // namespace event_hook
}  // namespace allocscope
