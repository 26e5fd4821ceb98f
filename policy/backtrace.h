// backtrace.h: call stacks for reports, captured and printed without allocating.
//
// Frames are return addresses from the unwinder (_Unwind_Backtrace, called directly: glibc's
// backtrace() would dlopen libgcc_s and allocate on first use). They are printed as
// "module+0xoffset" (callsite.h), which stays the same across runs despite ASLR and which
// addr2line -e MODULE resolves to a source line.
#pragma once

#include <stddef.h>

namespace allocscope {

inline constexpr int kMaxFrames = 32;

// Fills frames[0..max) with the caller's return addresses, starting at the first frame
// outside the object that contains allocscope (its own frames say nothing to the user).
// Returns the number captured.
int capture_backtrace(void **frames, int max);

// Writes the frames as "mod+0x10 <- mod+0x20 <- ...", each named by format_call_site
// (callsite.h), as fault.log, fault.record and fault.callsite name them. Returns buf.
const char *format_backtrace(void *const *frames, int n, char *buf, size_t len);

}  // namespace allocscope
