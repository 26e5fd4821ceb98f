// preload.h: the preload a command runs under: where liballocscope.so is, which jemalloc
// it holds, the configuration given to it, and the environment that carries both to CMD
// and its children.
#pragma once

#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "subprocess.h"

// --conf, taken by run and sweep.
ABSL_DECLARE_FLAG(std::string, conf);

namespace allocscope::cmd {

// The preload this command uses: $ALLOCSCOPE_LIB if set; else, for the command in the
// build tree, the build tree's; else the installed one, found from where the command is
// installed (so an installed tree still works after it is moved, or under DESTDIR).
// An error when that file does not exist.
absl::StatusOr<std::string> PreloadPath();

// The jemalloc version inside the preload at `path`: the JEMALLOC_VERSION string that
// jemalloc keeps in .rodata for mallctl("version"), e.g. 5.3.0-0-g54eaed1d8b56b1aa528be3b...
absl::StatusOr<std::string> JemallocVersion(const std::string &path);

// One piece of configuration and where it came from: "ALLOCSCOPE_CONF" (the environment),
// "--conf", "--limit", ...
struct ConfPiece {
  std::string source;
  std::string text;
};

// The environment's ALLOCSCOPE_CONF, if it has one, then --conf, if given.
std::vector<ConfPiece> BaseConfiguration(const Environment &env);

// Checks every piece with the preload's own parser (policy/options.h) and applies nothing:
// OK, or an error holding the parser's line for each bad pair ("--limit: bad value 'lots'
// for key 'limit': expected ...").
absl::Status CheckConfiguration(const std::vector<ConfPiece> &pieces);

// What `run` and `sweep` check before they start CMD, in this order: the configuration
// (CheckConfiguration), the preload (PreloadPath), and, when `command` is not empty, the
// program its argv[0] names (FindProgram; PreloadWarnings are printed). On a failure it
// complains as `verb` ("allocscope VERB: ...") and returns the exit status (2, or 126/127
// for the program); 0 when all is well.
struct Launch {
  std::string preload;
  std::string program;  // "" without a command
};
int PrepareLaunch(absl::string_view verb, const std::vector<ConfPiece> &pieces,
                  const std::vector<std::string> &command, Launch *launch);

// `env` with LD_PRELOAD starting with `preload` (other preloads kept after it) and
// ALLOCSCOPE_CONF set to the pieces joined by ',' (later pairs win).
Environment PreloadEnvironment(Environment env, const std::string &preload,
                               const std::vector<ConfPiece> &pieces);

}  // namespace allocscope::cmd
