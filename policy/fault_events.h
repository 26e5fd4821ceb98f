// fault_events.h: fault.events, the per-process records a sweep judges each run by: how every
// process of the tree started and ended, and where it crashed (record_format.h has the
// lines).
//
// With fault.events:PATH (%p = pid; the sweep sets it on every run) each process under the
// preload appends to its own file:
//   - a start line when the key is applied (at start-up) and in a fork child;
//   - an exit line when it ends by exit() or by returning from main (an on_exit handler,
//     which sees the status; registered at start-up, so it runs after the program's own
//     handlers and the destructors), or by _exit/_Exit (startup.cc's wrapper): the status,
//     the stack that ended it, and the bytes the failed path left live (leak_track.h);
//   - a crash line when SIGSEGV, SIGBUS, SIGABRT, SIGFPE or SIGILL arrives: the crashing
//     thread's stack from the interrupted instruction outwards and the last injection
//     (fault.h). Written with async-signal-safe code (no malloc, no stdio; frames are named
//     through the call-site cache, which takes the loader's lock only for an address it
//     has not seen). Then the program's own handler, if it had one when the key was
//     applied, is called; otherwise the default action is restored and the signal raised
//     again, so the process ends with the same status as without allocscope. The handler
//     runs on an alternate stack (a stack overflow is caught too): the thread that
//     applied the key and every thread started after it through pthread_create have one;
//   - a thread line per thread when it receives stacks_signal() (record_format.h): the
//     sweep sends it to a hung run's process group before killing it. The thread the
//     kernel picks passes it on to every other thread of the process (tgkill), and each
//     writes its own stack.
// A handler the program installs later for one of those signals (sigaction, signal:
// preload/signal_api.cc) does not replace ours: it becomes the handler ours chains to,
// and the program is told what it would have been told (its own previous handler).
#pragma once

#include <signal.h>

namespace allocscope {
namespace fault_events {

// fault.events was set (or reset): publishes the path; the first time with a path,
// installs the signal handlers and writes the start line.
void settings_changed();

// The preload's constructor, after the configuration is applied: registers the exit
// handler when fault.events is set.
void at_start();

// A thread starts (preload/thread_start.cc) or exits (lifecycle.h's thread exit
// handler): with fault.events, it gets, and gives back, an alternate signal stack of its
// own, so that a stack overflow on it is recorded too.
void thread_started();
void thread_exiting();

// In a fork child: its start line.
void after_fork_child();

// The preload's sigaction: true if our crash handler holds `sig`, in which case the
// program's new action (if any) is kept as the one ours chains to, and its previous one
// returned in *old (if asked). False: not ours, the caller installs it for real.
bool program_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
// Whether our crash handler holds `sig` (the preload's signal() routes it to sigaction).
bool holds_signal(int sig);

// startup.cc's _exit/_Exit wrapper, before the real call. Async-signal-safe.
void at_underscore_exit(int status, const char *how);

}  // namespace fault_events
}  // namespace allocscope
