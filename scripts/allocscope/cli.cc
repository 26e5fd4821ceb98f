// cli.cc: see cli.h.
#include "cli.h"

#include <cstdio>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace allocscope::cmd {
namespace {

// absl names flags like C identifiers; the command line spells them with '-' (a
// --max-points flag is absl's max_points).
std::string RegistryName(absl::string_view name) { return absl::StrReplaceAll(name, {{"-", "_"}}); }

std::string RegistryName(const VerbFlag &f) {
  return RegistryName(f.registered.empty() ? f.name : f.registered);
}

const VerbFlag *FindVerbFlag(const Verb &verb, absl::string_view name) {
  for (const VerbFlag &f : verb.flags)
    if (RegistryName(f.name) == RegistryName(name)) return &f;
  return nullptr;
}

}  // namespace

void Complain(absl::string_view verb, absl::string_view message) {
  const std::string who = verb.empty() ? "allocscope" : absl::StrCat("allocscope ", verb);
  for (absl::string_view line : absl::StrSplit(message, '\n'))
    fprintf(stderr, "%s: %.*s\n", who.c_str(), static_cast<int>(line.size()), line.data());
}

absl::Status CheckVerbFlags(const Verb &verb) {
  for (const VerbFlag &f : verb.flags) {
    if (absl::FindCommandLineFlag(RegistryName(f)) == nullptr)
      return absl::InternalError(
          absl::StrCat("verb ", verb.name, " names flag --", f.name, ", which is not defined"));
  }
  return absl::OkStatus();
}

const absl::CommandLineFlag &RegisteredFlag(const VerbFlag &flag) {
  // CheckVerbFlags ran at start-up: every flag a verb names is defined.
  return *absl::FindCommandLineFlag(RegistryName(flag));
}

absl::StatusOr<ParsedArgs> ParseVerbArgs(const Verb &verb, const std::vector<std::string> &args) {
  ParsedArgs parsed;
  const std::string help_hint = absl::StrCat(" (allocscope help ", verb.name, ")");
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &arg = args[i];
    if (arg == "--") {
      parsed.command.assign(args.begin() + static_cast<long>(i) + 1, args.end());
      break;
    }
    if (arg == "--help" || arg == "-h") {
      parsed.help = true;
      continue;
    }
    if (!absl::StartsWith(arg, "--")) {
      if (absl::StartsWith(arg, "-") && arg.size() > 1)
        return absl::InvalidArgumentError(
            absl::StrCat("unknown flag ", arg, " (flags are spelled --name)", help_hint));
      parsed.command.assign(args.begin() + static_cast<long>(i), args.end());
      break;
    }
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const VerbFlag *spec = FindVerbFlag(verb, name);
    absl::CommandLineFlag *flag =
        spec != nullptr ? absl::FindCommandLineFlag(RegistryName(*spec)) : nullptr;
    if (flag == nullptr)
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name, help_hint));
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (flag->IsOfType<bool>()) {
      value = "true";
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " needs a value: --", name, " ", spec->value));
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) return absl::InvalidArgumentError(error);
  }
  if (!verb.takes_command && !parsed.command.empty())
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected argument '", parsed.command.front(), "'", help_hint));
  return parsed;
}

}  // namespace allocscope::cmd
