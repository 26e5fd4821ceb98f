// help.h: the command's help, from one set of texts: the verbs' descriptions (cli.h), their
// flags' absl help strings, and the overview below. `allocscope --help`, `allocscope help
// VERB` and `allocscope VERB --help` print it as text; `allocscope --man` prints the same as
// the roff of allocscope(1), which the build generates and meson install installs.
#pragma once

#include <string>
#include "absl/strings/string_view.h"

#include "absl/types/span.h"
#include "cli.h"

namespace allocscope::cmd {

// What `allocscope --help` prints: what the command is, its verbs, its exit statuses and
// the environment it reads.
std::string OverviewHelp(absl::Span<const Verb *const> verbs);

// What `allocscope help VERB` prints: the verb's synopsis, description and flags.
std::string VerbHelp(const Verb &verb);

// allocscope(1) in roff (man(7) macros).
std::string ManPage(absl::Span<const Verb *const> verbs, absl::string_view version);

}  // namespace allocscope::cmd
