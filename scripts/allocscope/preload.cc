// preload.cc: see preload.h. Where the preload is comes from the build: meson defines
// ALLOCSCOPE_BUILD_COMMAND and ALLOCSCOPE_BUILD_PRELOAD (absolute paths in the build
// tree) and ALLOCSCOPE_INSTALLED_PRELOAD (the installed preload's path relative to the
// installed command's directory, or absolute when bindir or libdir is).
#include "preload.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cli.h"
#include "elf_file.h"
#include "exit_status.h"
#include "options.h"
#include "paths.h"
#include "program.h"

ABSL_FLAG(std::string, conf, "",
          "more ALLOCSCOPE_CONF pairs (key:value,key:value), after those the environment "
          "already has; `man allocscope` and the README list the keys");

namespace allocscope::cmd {
namespace {

// "5.3.0-0-g54eaed1d8b56b1aa528be3bdd1877e59c56fa90c": jemalloc's JEMALLOC_VERSION, the
// form its build writes (MAJOR.MINOR.BUGFIX-NREV-gGID, GID a 40-digit commit id).
bool IsJemallocVersion(absl::string_view s) {
  const auto number = [&s] {
    size_t n = 0;
    while (n < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[n]))) ++n;
    s.remove_prefix(n);
    return n > 0;
  };
  if (!number() || !absl::ConsumePrefix(&s, ".") || !number() || !absl::ConsumePrefix(&s, ".") ||
      !number() || !absl::ConsumePrefix(&s, "-") || !number() || !absl::ConsumePrefix(&s, "-g"))
    return false;
  if (s.size() != 40) return false;
  for (const char c : s)
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace

absl::StatusOr<std::string> PreloadPath() {
  std::string path;
  if (const char *lib = getenv("ALLOCSCOPE_LIB"); lib != nullptr && *lib != '\0') {
    path = lib;
  } else {
    const std::string self = RealPath("/proc/self/exe");
    if (self == RealPath(ALLOCSCOPE_BUILD_COMMAND)) {
      path = ALLOCSCOPE_BUILD_PRELOAD;
    } else {
      const std::string installed = ALLOCSCOPE_INSTALLED_PRELOAD;
      path = absl::StartsWith(installed, "/") ? installed
                                              : absl::StrCat(Dirname(self), "/", installed);
    }
  }
  path = RealPath(path);
  if (!IsRegularFile(path))
    return absl::NotFoundError(
        absl::StrCat(path, " does not exist (build it, or set ALLOCSCOPE_LIB)"));
  return path;
}

absl::StatusOr<std::string> JemallocVersion(const std::string &path) {
  absl::StatusOr<ElfFile> elf = ElfFile::Open(path);
  if (!elf.ok()) return elf.status();
  absl::StatusOr<std::string> rodata = elf->Section(".rodata");
  if (!rodata.ok()) return rodata.status();
  for (absl::string_view s : absl::StrSplit(*rodata, '\0'))
    if (IsJemallocVersion(s)) return std::string(s);
  return absl::NotFoundError(absl::StrCat(path, " holds no jemalloc version string"));
}

std::vector<ConfPiece> BaseConfiguration(const Environment &env) {
  std::vector<ConfPiece> pieces;
  if (std::optional<std::string> conf = env.Get("ALLOCSCOPE_CONF"); conf && !conf->empty())
    pieces.push_back({"ALLOCSCOPE_CONF", *conf});
  if (std::string conf = absl::GetFlag(FLAGS_conf); !conf.empty())
    pieces.push_back({"--conf", conf});
  return pieces;
}

absl::Status CheckConfiguration(const std::vector<ConfPiece> &pieces) {
  std::string errors;
  int bad = 0;
  for (const ConfPiece &piece : pieces)
    bad += check_config(piece.text, piece.source.c_str(), &errors);
  if (bad == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StripTrailingAsciiWhitespace(errors));
}

int PrepareLaunch(absl::string_view verb, const std::vector<ConfPiece> &pieces,
                  const std::vector<std::string> &command, Launch *launch) {
  if (absl::Status s = CheckConfiguration(pieces); !s.ok()) {
    Complain(verb, s.message());
    return kExitUsage;
  }
  absl::StatusOr<std::string> preload = PreloadPath();
  if (!preload.ok()) {
    Complain(verb, preload.status().message());
    return kExitUsage;
  }
  launch->preload = *std::move(preload);
  if (command.empty()) return kExitOk;
  absl::StatusOr<std::string> program = FindProgram(command[0]);
  if (!program.ok()) {
    Complain(verb, program.status().message());
    return ExitStatusFor(program.status());
  }
  launch->program = *std::move(program);
  for (const std::string &warning : PreloadWarnings(launch->program)) Complain("", warning);
  return kExitOk;
}

Environment PreloadEnvironment(Environment env, const std::string &preload,
                               const std::vector<ConfPiece> &pieces) {
  // The loader splits LD_PRELOAD at spaces and colons.
  std::vector<std::string> preloads = {preload};
  for (absl::string_view p : absl::StrSplit(env.Get("LD_PRELOAD").value_or(""),
                                            absl::ByAnyChar(": \t"), absl::SkipEmpty()))
    if (p != preload) preloads.emplace_back(p);
  env.Set("LD_PRELOAD", absl::StrJoin(preloads, " "));
  std::vector<absl::string_view> texts;
  for (const ConfPiece &piece : pieces)
    if (!piece.text.empty()) texts.push_back(piece.text);
  if (!texts.empty()) env.Set("ALLOCSCOPE_CONF", absl::StrJoin(texts, ","));
  return env;
}

}  // namespace allocscope::cmd
