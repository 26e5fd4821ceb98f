// scope.h: per-thread scopes (allocscope_save/clear/restore), as memalloc_flags_save.
//
// A cookie is 64 bits: the flag bits its call changed (low 32), the nesting depth the
// call created (15 bits; deeper nesting saturates), a tag of the thread's (16 bits), and
// whether it was a clear (bit 63). restore() undoes exactly those bits; the depth lets it
// notice a restore out of LIFO order, which is reported (fatal with strict:true) and then
// applied anyway, resetting the depth to the cookie's so the remaining restores line up
// again. A cookie without this thread's tag (garbage, 0, another thread's) is reported
// and not applied.
//
// A scope that changes what happens on failure, or that a reserve serves, counts in the
// gate (gate::count_scopes) while it is in force; thread exit drops what an exiting
// thread still counts for.
#pragma once

#include "allocscope.h"
#include "flags.h"
#include "thread_state.h"

namespace allocscope {
namespace scope {

allocscope_cookie_t save(Flags flags, const void *callsite);
allocscope_cookie_t clear(Flags flags);
void restore(allocscope_cookie_t cookie);

// The thread is exiting: its scope no longer counts in the gate.
void thread_exit(ThreadState &t);

}  // namespace scope
}  // namespace allocscope
