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
};

// One line of each kind. A line that is not JSON (cut short by a crash while it was
// written) is nullopt; a JSON line of a format version this command does not read, or
// without the fields its version promises, is an error naming the version.
absl::StatusOr<std::optional<Injection>> ParseInjection(absl::string_view line);
absl::StatusOr<std::optional<SiteRecord>> ParseSiteRecord(absl::string_view line);

// Every injection in the files DIR/PREFIX.* (e.g. fault.%p.jsonl), ordered by pid.
absl::StatusOr<std::vector<Injection>> ReadInjections(const std::string &dir,
                                                      absl::string_view prefix);

// The files DIR/PREFIX.* (e.g. record.%p.jsonl), in name order.
absl::StatusOr<std::vector<ProcessRecords>> ReadSiteRecords(const std::string &dir,
                                                            absl::string_view prefix);

}  // namespace allocscope::cmd
