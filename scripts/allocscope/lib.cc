// lib.cc: `allocscope lib`: where the preload this command uses is.
#include <cstdio>

#include "exit_status.h"
#include "preload.h"
#include "verbs.h"

namespace allocscope::cmd {
namespace {

int LibMain(std::vector<std::string>) {
  absl::StatusOr<std::string> preload = PreloadPath();
  if (!preload.ok()) {
    Complain("lib", preload.status().message());
    return kExitUsage;
  }
  printf("%s\n", preload->c_str());
  return kExitOk;
}

}  // namespace

const Verb kLibVerb = {
    "lib",
    "print the path of the liballocscope.so this command uses",
    "",
    R"(Prints the absolute path of the preload: $ALLOCSCOPE_LIB if set, else the one
this command was built or installed with. To preload it by hand:
  LD_PRELOAD=$(allocscope lib) ALLOCSCOPE_CONF=stats_print:true CMD
pkg-config's variable `preload` names the installed one too:
  pkg-config --variable=preload allocscope)",
    {},
    false,
    LibMain,
};

}  // namespace allocscope::cmd
