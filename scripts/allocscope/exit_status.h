// exit_status.h: the command's exit statuses (help.cc's kExitStatus documents them).
#pragma once

namespace allocscope::cmd {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRefused = 1;          // stats/ctl: cannot read or steer it, or refused
inline constexpr int kExitUsage = 2;            // a usage or configuration error: nothing ran
inline constexpr int kExitNotPickedUp = 3;      // ctl: the target did not take the request
inline constexpr int kExitCannotExecute = 126;  // CMD exists but cannot be executed
inline constexpr int kExitNotFound = 127;       // CMD was not found
inline constexpr int kExitInterrupted = 130;    // a sweep ended by SIGINT or SIGTERM

}  // namespace allocscope::cmd
