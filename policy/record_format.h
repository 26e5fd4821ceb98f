// record_format.h: the lines of fault.log and fault.record, the contract between the
// preload, which writes them (fault.cc), and the allocscope command, which reads them.
//
// Both are JSON lines: one object per line, one file per process when the path holds %p.
// Every line starts with "v", the format version. A reader rejects a line whose version
// it does not know: the preload and the command may come from different builds. Bump
// kRecordVersion when a field is removed or changes meaning; adding a field needs no bump
// (readers ignore fields they do not know). Strings are written as they are, without JSON
// escapes: module paths holding '"' or '\' make a line a reader skips as unparsable, as it
// skips a line cut short by a crash.
//
// fault.log: one line per injected failure, appended as it happens (so a crash right
// after it leaves the line behind):
//   {"v":1,"pid":4242,"tid":4242,"size":1000,"function":"malloc","nth":7,
//    "callsite":"prog+0x1238","module":"/usr/bin/prog","offset":"0x1238",
//    "backtrace":["prog+0x1238","libc.so.6+0x27249","prog+0x15d0"]}
//   pid, tid   the process and the thread that made the allocation
//   size       the bytes asked for
//   function   the allocation function: malloc, calloc, realloc, operator new, ...
//   nth        the allocation's number among the process's eligible ones (what fault.nth
//              counts; 0 when neither fault.log nor fault.verbose numbered them)
//   callsite   the allocator's caller as "module+0xoffset": the object's file name and the
//              offset of the return address - 1 from its load base (fault.callsite takes
//              it as it is). Absent, with module and offset, when no object contains it.
//   module     that object's absolute path
//   offset     the offset part of callsite
//   backtrace  frames from the allocator's caller outwards, each "module+0xoffset", or a
//              bare address when no object contains it
//
// fault.record: written at exit, one line per distinct call site that made eligible
// allocations:
//   {"v":1,"callsite":"prog+0x1238","module":"/usr/bin/prog","offset":"0x1238","count":3}
//   callsite, module, offset  as in fault.log
//   count      the eligible allocations made from there
#pragma once

#include <signal.h>

namespace allocscope {
namespace record_format {

inline constexpr int kRecordVersion = 2;

// The signal the sweep sends a hung run's process group for every thread's stack
// (fault_events.h); the preload installs its handler only with fault.events.
inline int stacks_signal() { return SIGRTMAX - 3; }

// The field names, for readers (fault.cc spells them in its printf formats).
inline constexpr char kVersion[] = "v";
inline constexpr char kPid[] = "pid";
inline constexpr char kTid[] = "tid";
inline constexpr char kSize[] = "size";
inline constexpr char kFunction[] = "function";
inline constexpr char kNth[] = "nth";
inline constexpr char kCallsite[] = "callsite";
inline constexpr char kModule[] = "module";
inline constexpr char kOffset[] = "offset";
inline constexpr char kBacktrace[] = "backtrace";
inline constexpr char kCount[] = "count";
inline constexpr char kKind[] = "kind";
inline constexpr char kStack[] = "stack";
inline constexpr char kDepth[] = "depth";
inline constexpr char kPersistent[] = "persistent";
inline constexpr char kFrames[] = "frames";
inline constexpr char kPpid[] = "ppid";
inline constexpr char kExe[] = "exe";
inline constexpr char kStatus[] = "status";
inline constexpr char kHow[] = "how";
inline constexpr char kSignal[] = "signal";
inline constexpr char kInjected[] = "injected";
inline constexpr char kInjectionNth[] = "injection_nth";
inline constexpr char kInjectionStack[] = "injection_stack";
inline constexpr char kInjectionCallsite[] = "injection_callsite";
inline constexpr char kFailedPathBytes[] = "failed_path_bytes";
inline constexpr char kFailedPathBlocks[] = "failed_path_blocks";
inline constexpr char kFailedPathOverflow[] = "failed_path_overflow";
inline constexpr char kLiveBytes[] = "live_bytes";

// The values of "kind".
inline constexpr char kKindSite[] = "site";
inline constexpr char kKindStack[] = "stack";
inline constexpr char kKindStacksDropped[] = "stacks_dropped";
inline constexpr char kKindStart[] = "start";
inline constexpr char kKindExit[] = "exit";
inline constexpr char kKindCrash[] = "crash";
inline constexpr char kKindThread[] = "thread";

}  // namespace record_format
}  // namespace allocscope
