// observe.h: what runs at the preload's events (event_hook.h) while the live page (control) or
// the timeline (timeline_file) is on: one thread at a time, never re-entered, and only the
// request poll more often than every few milliseconds.
#pragma once

namespace allocscope {
namespace observe {

// Hooks tick() onto the events once control or timeline_file is set (idempotent).
void start();
// One event: polls the live page's request slot, and at most every kRefreshMs refreshes
// its counters and takes a timeline sample.
void tick();
// In a fork child (lifecycle.cc's fork list): no tick in progress, whatever the parent's
// threads were doing.
void after_fork_child();

inline constexpr unsigned kRefreshMs = 20;

// At exit, or from the exit signals' handler (`signal`): writes the timeline and removes
// the live page.
void finish(int signal);

}  // namespace observe
}  // namespace allocscope
