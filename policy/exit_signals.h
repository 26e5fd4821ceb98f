// exit_signals.h: the stats survive SIGTERM, SIGINT and SIGHUP, the ways services and
// jobs are stopped (systemd, container runtimes, a terminal's ^C, a closed session).
//
// When stats_print, stats_file, control or timeline_file is set, the preload installs its
// own handler for each of the three whose disposition is the default (SIG_DFL), except in
// the init of a PID namespace (pid 1), to which the kernel does not deliver them: an ignored
// signal stays ignored (nohup), a handler the program installed before stays. The handler
// writes the stats (write_exit_stats(sig): async-signal-safe, no lock), the timeline and
// removes the live page, then restores SIG_DFL, unblocks the signal and raises it again:
// the process dies of the same signal, with the same status, as without allocscope.
//
// The program must see the disposition it would see without us: Python, for one, installs
// its KeyboardInterrupt handler only if it finds SIGINT at SIG_DFL, and shells keep
// inherited dispositions. Reading the disposition through sigaction() cannot be made to
// lie any other way, so the preload wraps sigaction() and signal() (preload/exit_signals.cc,
// the only reason it does): for these three signals, while our handler stands in for
// SIG_DFL, they report SIG_DFL (with the flags and mask the program gave), and a program
// that sets SIG_DFL gets our stand-in again; any other handler or SIG_IGN is installed as
// given and ours is gone. Signals sent while the program's own handler is installed are
// entirely the program's. A program that calls the rt_sigaction system call directly
// bypasses the wrapper; its own handler then simply replaces ours.
#pragma once

#include "compiler.h"

namespace allocscope {
namespace exit_signals {

// "SIGTERM", "SIGINT", "SIGHUP", else "signal".
const char *name(int sig);

// Is anything configured that the handler would write (stats, timeline, live page)?
bool wanted();

// Installs the handler where the disposition is SIG_DFL, once wanted(). Defined by the
// preload (weak: the unit tests link the policy alone); control.cc calls it after the keys
// that make it wanted.
void arm() __attribute__((weak));

// What the handler writes, before re-raising: set by modules that keep something to
// write at exit (the timeline, the live page's removal). At most kWriters.
inline constexpr int kWriters = 4;
void on_exit_signal(void (*writer)(int sig));
void run_writers(int sig);

}  // namespace exit_signals
}  // namespace allocscope
