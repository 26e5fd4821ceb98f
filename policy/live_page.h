// live_page.h: control:true: the process's live counters and a request slot in a shared
// page that `allocscope top`, `allocscope stats PID` and `allocscope ctl PID` read and
// write, with no thread and no signal of ours in the process (live_page_format.h).
//
// Where: $XDG_RUNTIME_DIR/allocscope when XDG_RUNTIME_DIR is an absolute path to a
// directory of the user's own with no access for others, else /tmp/allocscope-UID. The
// directory is made with mode 0700, and used only if it is a real directory (no symbolic
// link: O_NOFOLLOW) owned by the user with no access for group or others; the page is
// DIR/PID.page, mode 0600, opened O_NOFOLLOW|O_CLOEXEC and created fresh (a page left by
// an earlier image of the same pid, before an exec, is replaced). No descriptor is kept:
// the page is mapped, and the path kept to remove it at exit (the destructor, _exit, or
// the exit signals' handler). A process that dies otherwise (SIGKILL, a crash) leaves its
// page; the command removes pages whose process is gone.
//
// Counters are refreshed, and the request slot polled, at the events (observe.h): a busy
// process answers within milliseconds, an idle one not until it allocates again (ctl
// then times out, saying so). A fork child makes its own page at its first event (most
// children exec or _exit first); an exec'd image makes its own.
#pragma once

#include <stdint.h>

#include "options.h"

namespace allocscope {
namespace live_page {

// Creates and maps the page (control:true); a Refusal naming the problem if it cannot.
Refusal open_page();
// In a fork child (lifecycle.cc's fork list): the parent's page is not the child's; the
// child makes its own at its first event.
void after_fork_child();
// Unmaps and removes it (control:false, exit). Async-signal-safe.
void close_page();
// Takes a posted request, applies it and answers (observe.cc, at every event).
void poll();
// Refreshes the counters, and every few refreshes the JSON and summary text.
void refresh(uint64_t now_ns);

}  // namespace live_page
}  // namespace allocscope
