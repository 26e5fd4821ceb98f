// records.cc: see records.h.
#include "records.h"

#include <dirent.h>

#include <algorithm>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "record_format.h"

namespace allocscope::cmd {
namespace {

namespace rf = ::allocscope::record_format;

// The version check every line goes through: nullopt for a line that is not JSON.
absl::StatusOr<std::optional<Json>> ParseLine(absl::string_view line, absl::string_view kind) {
  absl::StatusOr<Json> json = ParseJson(line);
  if (!json.ok() || !json->is_object()) return std::nullopt;
  const Json *v = json->find(rf::kVersion);
  if (v == nullptr || !v->is_int())
    return absl::FailedPreconditionError(
        absl::StrCat("a ", kind, " line without a format version (\"", rf::kVersion,
                     "\"); this allocscope reads version ", rf::kRecordVersion,
                     " (is the preload from an older build?): ", line));
  if (v->as_int() != rf::kRecordVersion)
    return absl::FailedPreconditionError(absl::StrCat(
        "a ", kind, " line of format version ", v->as_int(), "; this allocscope reads version ",
        rf::kRecordVersion, " (the preload and the command come from different builds)"));
  return std::optional<Json>(*std::move(json));
}

// The fields of one line, each checked for its type.
class Fields {
 public:
  Fields(const Json &json, absl::string_view kind, absl::string_view line)
      : json_(json), kind_(kind), line_(line) {}

  void Int(const char *name, int64_t *out) {
    const Json *v = json_.find(name);
    if (v != nullptr && v->is_int())
      *out = v->as_int();
    else
      Missing(name, "a whole number");
  }
  void Uint(const char *name, uint64_t *out) {
    int64_t n = 0;
    Int(name, &n);
    if (n < 0) Missing(name, "a whole number from 0");
    *out = static_cast<uint64_t>(n);
  }
  void String(const char *name, std::string *out) {
    const Json *v = json_.find(name);
    if (v != nullptr && v->is_string())
      *out = v->as_string();
    else
      Missing(name, "a string");
  }
  void OptionalInt(const char *name, std::optional<int64_t> *out) {
    const Json *v = json_.find(name);
    if (v == nullptr) return;
    if (v->is_int())
      *out = v->as_int();
    else
      Missing(name, "a whole number");
  }
  void OptionalBool(const char *name, bool *out) {
    const Json *v = json_.find(name);
    if (v == nullptr) return;
    if (v->is_bool())
      *out = v->as_bool();
    else
      Missing(name, "true or false");
  }
  void OptionalString(const char *name, std::optional<std::string> *out) {
    const Json *v = json_.find(name);
    if (v == nullptr) return;
    if (v->is_string())
      *out = v->as_string();
    else
      Missing(name, "a string");
  }
  void Strings(const char *name, std::vector<std::string> *out) {
    const Json *v = json_.find(name);
    if (v == nullptr || !v->is_array()) return Missing(name, "an array of strings");
    for (const Json &e : v->as_array()) {
      if (!e.is_string()) return Missing(name, "an array of strings");
      out->push_back(e.as_string());
    }
  }
  absl::Status status() const { return status_; }

 private:
  void Missing(const char *name, absl::string_view what) {
    if (status_.ok())
      status_ = absl::FailedPreconditionError(absl::StrCat("a ", kind_, " line of version ",
                                                           rf::kRecordVersion, " whose \"", name,
                                                           "\" is not ", what, ": ", line_));
  }

  const Json &json_;
  absl::string_view kind_;
  absl::string_view line_;
  absl::Status status_;
};

// One line: nullopt if it is not JSON; the record `fill` reads from its fields, or the
// first field that is missing or of the wrong type.
template <typename Record, typename Fill>
absl::StatusOr<std::optional<Record>> ParseRecord(absl::string_view line, absl::string_view kind,
                                                  Fill fill) {
  absl::StatusOr<std::optional<Json>> json = ParseLine(line, kind);
  if (!json.ok()) return json.status();
  if (!*json) return std::optional<Record>();
  Record record;
  Fields fields(**json, kind, line);
  fill(fields, record);
  if (!fields.status().ok()) return fields.status();
  return std::optional<Record>(std::move(record));
}

// The names of the files DIR/PREFIX.*, sorted.
std::vector<std::string> FilesWithPrefix(const std::string &dir, absl::string_view prefix) {
  std::vector<std::string> names;
  DIR *d = opendir(dir.c_str());
  if (d == nullptr) return names;
  const std::string start = absl::StrCat(prefix, ".");
  while (const dirent *e = readdir(d))
    if (absl::StartsWith(e->d_name, start)) names.emplace_back(e->d_name);
  closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

template <typename Record, typename Parse>
absl::StatusOr<std::vector<Record>> ReadLines(const std::string &path, Parse parse) {
  std::vector<Record> records;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    absl::StatusOr<std::optional<Record>> record = parse(line);
    if (!record.ok())
      return absl::Status(record.status().code(),
                          absl::StrCat(path, ": ", record.status().message()));
    if (*record) records.push_back(**std::move(record));
  }
  return records;
}

}  // namespace

absl::StatusOr<std::optional<Injection>> ParseInjection(absl::string_view line) {
  return ParseRecord<Injection>(line, "fault.log", [](Fields &f, Injection &in) {
    f.Int(rf::kPid, &in.pid);
    f.Int(rf::kTid, &in.tid);
    f.Uint(rf::kSize, &in.size);
    f.String(rf::kFunction, &in.function);
    f.Uint(rf::kNth, &in.nth);
    f.OptionalString(rf::kCallsite, &in.callsite);
    f.OptionalString(rf::kModule, &in.module);
    f.OptionalString(rf::kOffset, &in.offset);
    f.Strings(rf::kBacktrace, &in.backtrace);
    f.OptionalString(rf::kStack, &in.stack);
    std::optional<int64_t> depth;
    f.OptionalInt(rf::kDepth, &depth);
    in.depth = depth.value_or(0);
    f.OptionalBool(rf::kPersistent, &in.persistent);
  });
}

absl::StatusOr<std::optional<StackRecord>> ParseStackRecord(absl::string_view line) {
  return ParseRecord<StackRecord>(line, "fault.record", [](Fields &f, StackRecord &stack) {
    f.String(rf::kStack, &stack.stack);
    f.Strings(rf::kFrames, &stack.frames);
    f.Uint(rf::kCount, &stack.count);
  });
}

absl::StatusOr<std::optional<EventRecord>> ParseEvent(absl::string_view line) {
  return ParseRecord<EventRecord>(line, "fault.events", [](Fields &f, EventRecord &e) {
    f.String(rf::kKind, &e.kind);
    f.Int(rf::kPid, &e.pid);
    f.Int(rf::kPpid, &e.ppid);
    f.Int(rf::kTid, &e.tid);
    f.String(rf::kExe, &e.exe);
    f.OptionalInt(rf::kStatus, &e.status);
    std::optional<std::string> how;
    f.OptionalString(rf::kHow, &how);
    e.how = how.value_or("");
    f.OptionalInt(rf::kSignal, &e.signal);
    std::optional<int64_t> injected;
    f.OptionalInt(rf::kInjected, &injected);
    e.injected = injected.value_or(0);
    f.OptionalString(rf::kInjectionStack, &e.injection_stack);
    f.OptionalString(rf::kInjectionCallsite, &e.injection_callsite);
    f.OptionalInt(rf::kInjectionNth, &e.injection_nth);
    f.OptionalInt(rf::kFailedPathBytes, &e.failed_path_bytes);
    f.OptionalInt(rf::kFailedPathBlocks, &e.failed_path_blocks);
    f.OptionalBool(rf::kFailedPathOverflow, &e.failed_path_overflow);
    f.OptionalInt(rf::kLiveBytes, &e.live_bytes);
    if (e.kind != rf::kKindStart) f.Strings(rf::kFrames, &e.frames);
  });
}

absl::StatusOr<std::optional<SiteRecord>> ParseSiteRecord(absl::string_view line) {
  return ParseRecord<SiteRecord>(line, "fault.record", [](Fields &f, SiteRecord &site) {
    f.String(rf::kCallsite, &site.callsite);
    f.String(rf::kModule, &site.module);
    f.String(rf::kOffset, &site.offset);
    f.Uint(rf::kCount, &site.count);
  });
}

absl::StatusOr<std::vector<Injection>> ReadInjections(const std::string &dir,
                                                      absl::string_view prefix) {
  std::vector<Injection> all;
  for (const std::string &name : FilesWithPrefix(dir, prefix)) {
    absl::StatusOr<std::vector<Injection>> lines =
        ReadLines<Injection>(absl::StrCat(dir, "/", name), ParseInjection);
    if (!lines.ok()) return lines.status();
    all.insert(all.end(), lines->begin(), lines->end());
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const Injection &a, const Injection &b) { return a.pid < b.pid; });
  return all;
}

absl::StatusOr<std::vector<ProcessRecords>> ReadSiteRecords(const std::string &dir,
                                                            absl::string_view prefix) {
  std::vector<ProcessRecords> files;
  for (const std::string &name : FilesWithPrefix(dir, prefix)) {
    ProcessRecords file;
    file.file = name;
    const std::string path = absl::StrCat(dir, "/", name);
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      // The kind decides the line's fields; a line that is not JSON is skipped as cut short.
      absl::StatusOr<Json> json = ParseJson(line);
      if (!json.ok() || !json->is_object()) continue;
      const Json *kind = json->find(rf::kKind);
      const std::string k = kind != nullptr && kind->is_string() ? kind->as_string() : "site";
      absl::Status status;
      if (k == rf::kKindSite) {
        absl::StatusOr<std::optional<SiteRecord>> r = ParseSiteRecord(line);
        if (r.ok() && *r) file.sites.push_back(**std::move(r));
        status = r.status();
      } else if (k == rf::kKindStack) {
        absl::StatusOr<std::optional<StackRecord>> r = ParseStackRecord(line);
        if (r.ok() && *r) file.stacks.push_back(**std::move(r));
        status = r.status();
      } else if (k == rf::kKindStacksDropped) {
        const Json *count = json->find(rf::kCount);
        if (count != nullptr && count->is_int()) file.stacks_dropped += count->as_int();
      }
      if (!status.ok()) return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
    }
    files.push_back(std::move(file));
  }
  return files;
}

absl::StatusOr<std::vector<EventRecord>> ReadEvents(const std::string &dir,
                                                    absl::string_view prefix) {
  std::vector<EventRecord> all;
  for (const std::string &name : FilesWithPrefix(dir, prefix)) {
    absl::StatusOr<std::vector<EventRecord>> lines =
        ReadLines<EventRecord>(absl::StrCat(dir, "/", name), ParseEvent);
    if (!lines.ok()) return lines.status();
    all.insert(all.end(), lines->begin(), lines->end());
  }
  return all;
}

}  // namespace allocscope::cmd
