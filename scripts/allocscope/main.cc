// main.cc: the allocscope command: picks the verb, reads its flags, and runs it; prints
// the help, the version, and (for the build) the man page.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli.h"
#include "exit_status.h"
#include "help.h"
#include "preload.h"
#include "verbs.h"
#include "version.h"

namespace allocscope::cmd {
namespace {

constexpr const Verb *kVerbs[] = {&kRunVerb, &kSweepVerb, &kTopVerb, &kStatsVerb, &kCtlVerb,
                                  &kLibVerb};

const Verb *FindVerb(absl::string_view name) {
  for (const Verb *verb : kVerbs)
    if (verb->name == name) return verb;
  return nullptr;
}

int UnknownVerb(absl::string_view name) {
  std::vector<absl::string_view> names;
  for (const Verb *verb : kVerbs) names.push_back(verb->name);
  Complain("", absl::StrCat("unknown verb '", name, "' (verbs: ", absl::StrJoin(names, ", "),
                            "; allocscope --help)"));
  return kExitUsage;
}

// The project's version, and the preload's path and jemalloc version, read from the
// file (no process is started: the string jemalloc keeps for mallctl("version")).
int Version() {
  printf("allocscope %s\n", kVersion);
  absl::StatusOr<std::string> preload = PreloadPath();
  if (!preload.ok()) {
    Complain("", preload.status().message());
    return kExitUsage;
  }
  absl::StatusOr<std::string> jemalloc = JemallocVersion(*preload);
  if (!jemalloc.ok()) {
    Complain("", jemalloc.status().message());
    return kExitUsage;
  }
  printf("preload %s\njemalloc %s\n", preload->c_str(), jemalloc->c_str());
  return kExitOk;
}

int Main(const std::vector<std::string> &args) {
  for (const Verb *verb : kVerbs) {
    if (absl::Status s = CheckVerbFlags(*verb); !s.ok()) {
      Complain("", s.message());
      return kExitUsage;
    }
  }
  if (args.empty()) {
    fputs(OverviewHelp(kVerbs).c_str(), stderr);
    return kExitUsage;
  }
  const std::string &first = args[0];
  if (first == "--help" || first == "-h") {
    fputs(OverviewHelp(kVerbs).c_str(), stdout);
    return kExitOk;
  }
  if (first == "--version") return Version();
  // Not in the help: the build runs it to make allocscope.1.
  if (first == "--man") {
    fputs(ManPage(kVerbs, kVersion).c_str(), stdout);
    return kExitOk;
  }
  if (first == "help") {
    if (args.size() == 1) {
      fputs(OverviewHelp(kVerbs).c_str(), stdout);
      return kExitOk;
    }
    const Verb *verb = FindVerb(args[1]);
    if (verb == nullptr) return UnknownVerb(args[1]);
    fputs(VerbHelp(*verb).c_str(), stdout);
    return kExitOk;
  }
  const Verb *verb = FindVerb(first);
  if (verb == nullptr) return UnknownVerb(first);
  absl::StatusOr<ParsedArgs> parsed =
      ParseVerbArgs(*verb, std::vector<std::string>(args.begin() + 1, args.end()));
  if (!parsed.ok()) {
    Complain(verb->name, parsed.status().message());
    return kExitUsage;
  }
  if (parsed->help) {
    fputs(VerbHelp(*verb).c_str(), stdout);
    return kExitOk;
  }
  return verb->main(std::move(parsed->command));
}

}  // namespace
}  // namespace allocscope::cmd

int main(int argc, char **argv) {
  return allocscope::cmd::Main(std::vector<std::string>(argv + 1, argv + argc));
}
