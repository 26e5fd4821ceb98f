// records.h: reading the preload's fault.log and fault.record files (their lines are
// described in policy/record_format.h), one file per process as %p in the path makes
// them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"
#include "json.h"

namespace allocscope::cmd {

// A fault.log line: one injected failure.
// (stack/depth: the stack_id hash of its first fault.depth frames; persistent: it was
// failed because fault.persistent had started failing everything.)
struct Injection {
  int64_t pid = 0;
  int64_t tid = 0;
  uint64_t size = 0;
  std::string function;
  uint64_t nth = 0;
  std::optional<std::string> callsite;  // with module and offset, when it could be named
  std::optional<std::string> module;
  std::optional<std::string> offset;
  std::vector<std::string> backtrace;
  std::optional<std::string> stack;
  int64_t depth = 0;
  bool persistent = false;
};

// A fault.record line of kind "stack": a distinct stack of eligible allocations.
struct StackRecord {
  std::string stack;  // the hash, as fault.stack takes it
  std::vector<std::string> frames;
  uint64_t count = 0;
};

// A fault.events line (policy/fault_events.h): a process started, ended, crashed, or showed a
// thread's stack. Fields a kind does not have are left empty.
struct EventRecord {
  std::string kind;  // start, exit, crash, thread
  int64_t pid = 0, ppid = 0, tid = 0;
  std::string exe;
  std::optional<int64_t> status;  // exit
  std::string how;                // exit: exit, _exit, _Exit
  std::optional<int64_t> signal;  // crash
  int64_t injected = 0;           // injections in the process so far
  std::optional<std::string> injection_stack, injection_callsite;
  std::optional<int64_t> injection_nth;
  std::optional<int64_t> failed_path_bytes, failed_path_blocks, live_bytes;
  bool failed_path_overflow = false;
  std::vector<std::string> frames;
};

// A fault.record line: a call site and its count.
struct SiteRecord {
  std::string callsite;
  std::string module;
  std::string offset;
  uint64_t count = 0;
};

// The records of one process: one file.
struct ProcessRecords {
  std::string file;
  std::vector<SiteRecord> sites;
  std::vector<StackRecord> stacks;
  uint64_t stacks_dropped = 0;  // stacks past the preload's table
};

// One line of each kind. A line that is not JSON (cut short by a crash while it was
// written) is nullopt; a JSON line of a format version this command does not read, or
// without the fields its version promises, is an error naming the version.
absl::StatusOr<std::optional<Injection>> ParseInjection(absl::string_view line);
absl::StatusOr<std::optional<SiteRecord>> ParseSiteRecord(absl::string_view line);
absl::StatusOr<std::optional<StackRecord>> ParseStackRecord(absl::string_view line);
absl::StatusOr<std::optional<EventRecord>> ParseEvent(absl::string_view line);

// Every fault.events line in the files DIR/PREFIX.*, file by file in name order.
absl::StatusOr<std::vector<EventRecord>> ReadEvents(const std::string &dir,
                                                    absl::string_view prefix);

// Every injection in the files DIR/PREFIX.* (e.g. fault.%p.jsonl), ordered by pid.
absl::StatusOr<std::vector<Injection>> ReadInjections(const std::string &dir,
                                                      absl::string_view prefix);

// The files DIR/PREFIX.* (e.g. record.%p.jsonl), in name order.
absl::StatusOr<std::vector<ProcessRecords>> ReadSiteRecords(const std::string &dir,
                                                            absl::string_view prefix);

}  // namespace allocscope::cmd
