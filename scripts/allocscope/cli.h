// cli.h: the command line of a verb. Each verb (run, sweep, lib) declares which of the
// command's absl flags it takes; its flags are parsed through absl's flag registry
// (absl::FindCommandLineFlag, CommandLineFlag::ParseFrom), so absl's own parsers and
// each flag type's AbslParseFlag judge the values, and the help text comes from the
// flags' own descriptions (help.h).
//
// absl::ParseCommandLine is not used: it would parse the flags of CMD itself (it reads
// flags after positional arguments, so `run ls -l` would see -l), it has one flag set for
// the whole program rather than one per verb, and it exits with status 1 on a bad flag
// where this command promises 2.
#pragma once

#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/flags/commandlineflag.h"
#include "absl/status/statusor.h"

namespace allocscope::cmd {

struct VerbFlag {
  absl::string_view name;   // as on the command line, without "--"; absl's name has '_' for '-'
  absl::string_view value;  // what the help shows after it ("SIZE"); "" for a boolean
  // The absl flag behind it, when not the one named `name`: absl has one registry for the
  // whole command, so two verbs' --json or --timeout of different types or defaults are
  // two flags (stats' --json is stats_json, sweep's is json).
  absl::string_view registered = {};
};

struct Verb {
  absl::string_view name;
  absl::string_view summary;  // one line, for the list of verbs
  absl::string_view usage;    // what follows "allocscope NAME" in the synopsis
  // Paragraphs separated by blank lines, wrapped to 80 columns; lines that start with two
  // spaces are shown as they are (lists, examples).
  absl::string_view description;
  std::vector<VerbFlag> flags;
  bool takes_command;  // CMD [ARGS...] after the flags (or after "--")
  // Runs the verb once its flags are set; returns the exit status.
  int (*main)(std::vector<std::string> command);
  // What the overview shows for the operands (the "command"), when takes_command.
  absl::string_view operands = "-- CMD [ARGS...]";
};

// What a verb's arguments asked for.
struct ParsedArgs {
  bool help = false;                 // --help or -h: print the verb's help, run nothing
  std::vector<std::string> command;  // CMD [ARGS...]
};

// Sets the verb's flags from `args` (what follows the verb on the command line). Flags
// are --name, --name=value or --name value (a boolean takes no separate value; '_' may
// stand for '-' in a name); the first
// argument that is not a flag, or everything after "--", is CMD. An error names the
// argument and what is wrong with it.
absl::StatusOr<ParsedArgs> ParseVerbArgs(const Verb &verb, const std::vector<std::string> &args);

// Prints MESSAGE on stderr, each of its lines as "allocscope VERB: LINE" ("allocscope: LINE"
// when VERB is empty).
void Complain(absl::string_view verb, absl::string_view message);

// Checks that every flag a verb names is registered (a programming error otherwise).
absl::Status CheckVerbFlags(const Verb &verb);

// The registered flag a verb's flag is.
const absl::CommandLineFlag &RegisteredFlag(const VerbFlag &flag);

}  // namespace allocscope::cmd
