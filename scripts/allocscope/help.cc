// help.cc: see help.h. Texts are written wrapped to 80 columns in a two-rule markup that
// both renderings understand: blank lines separate paragraphs, and lines starting with
// two spaces are shown as they are (in roff: a no-fill block).
#include "help.h"

#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace allocscope::cmd {
namespace {

constexpr absl::string_view kName =
    "allocscope: run programs under liballocscope.so, the allocation-policy preload";

constexpr absl::string_view kIntro =
    R"(liballocscope.so replaces the malloc family and C++ operator new/delete in an
unmodified program, serves memory from jemalloc, and decides what happens when
memory runs short by the policy in force: retry until success (nofail), fail at
once (nowait), try lightly (noretry) or hard (retry_mayfail), or fall back to an
mmap region for large sizes (kv). This command runs programs under it with a
configuration (run), walks a program's allocation-failure points with fault
injection (sweep), shows and steers the processes running under it (top,
stats, ctl), and says where the preload is (lib).

Every configuration it is given (--conf, --limit, --policy and ALLOCSCOPE_CONF
from the environment) is checked with the preload's own parser before anything
runs: a bad pair is reported in the preload's words and nothing runs.)";

constexpr absl::string_view kExitStatus = R"(  0    the command ran (a sweep: no failing point, or only those --known lists;
       ctl: the target applied it)
  1    a sweep found a crash, hang, leak or wrong-output point not in --known
       (sweep --replay: the point's outcome differs from the report's); stats,
       ctl: the process cannot be read or steered (not running, another user's,
       not under allocscope with control:true, a page of another version), or
       ctl: the target refused the settings
  2    a usage or configuration error, nothing was run; or a sweep's baseline
       crashed or hung
  3    ctl: the target did not pick the request up within --timeout (it has
       not allocated since: the request was withdrawn, nothing changed)
  126  CMD was found but cannot be executed
  127  CMD was not found
  130  a sweep was interrupted (SIGINT or SIGTERM); its runs were killed and
       the report holds the points that finished
`allocscope run` otherwise exits with CMD's own status, or 128+N when signal N
ended it, as a shell does.)";

constexpr absl::string_view kEnvironment =
    R"(  ALLOCSCOPE_LIB   the preload to use instead of the one this command was built
                   or installed with
  ALLOCSCOPE_CONF  configuration already in the environment: checked, kept, and
                   put before --conf (later pairs win)
  LD_PRELOAD       other preloads: kept, after liballocscope.so)";

constexpr int kFlagColumn = 22;
constexpr int kWidth = 80;

// The verb's synopsis in short, for the overview: its flags as [FLAGS].
std::string ShortSynopsis(const Verb &verb) {
  std::string out = absl::StrCat("allocscope ", verb.name);
  if (!verb.flags.empty()) out.append(" [FLAGS]");
  if (verb.takes_command) absl::StrAppend(&out, " ", verb.operands);
  return out;
}

std::string Synopsis(const Verb &verb) {
  return verb.usage.empty() ? absl::StrCat("allocscope ", verb.name)
                            : absl::StrCat("allocscope ", verb.name, " ", verb.usage);
}

// The words of `text`: split at spaces, except inside [...] (a synopsis's optional
// parts stay whole).
std::vector<absl::string_view> Words(absl::string_view text) {
  std::vector<absl::string_view> words;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    const char c = i < text.size() ? text[i] : ' ';
    if (c == '[') ++depth;
    if (c == ']' && depth > 0) --depth;
    if (c != ' ' || depth > 0) continue;
    if (i > start) words.push_back(text.substr(start, i - start));
    start = i + 1;
  }
  return words;
}

// `text` wrapped to kWidth columns, starting at column `indent` (the caller has filled
// the first line up to it) and indenting every further line as much.
std::string Wrap(absl::string_view text, int indent) {
  std::string out;
  int column = indent;
  bool line_empty = true;
  for (absl::string_view word : Words(text)) {
    const int len = static_cast<int>(word.size());
    if (!line_empty && column + 1 + len > kWidth) {
      absl::StrAppend(&out, "\n", std::string(static_cast<size_t>(indent), ' '));
      column = indent;
      line_empty = true;
    }
    if (!line_empty) {
      out.push_back(' ');
      ++column;
    }
    absl::StrAppend(&out, word);
    column += len;
    line_empty = false;
  }
  return out;
}

// The flag's help and, when it has one worth showing, its default.
std::string FlagDescription(const absl::CommandLineFlag &flag) {
  std::string text = flag.Help();
  const std::string def = flag.DefaultValue();
  if (!def.empty() && def != "false") absl::StrAppend(&text, " (default ", def, ")");
  return text;
}

std::string FlagUsage(const VerbFlag &f) {
  return f.value.empty() ? absl::StrCat("--", f.name) : absl::StrCat("--", f.name, " ", f.value);
}

// ---- roff ------------------------------------------------------------------------------

// One line of text for roff: backslashes and hyphens escaped (a man page's "-" must be
// "\-" to be a hyphen-minus one can paste), and a line starting with . or ' not taken
// for a request.
std::string RoffLine(absl::string_view line) {
  std::string out;
  if (absl::StartsWith(line, ".") || absl::StartsWith(line, "'")) out = "\\&";
  for (const char c : line) {
    if (c == '\\')
      out.append("\\e");
    else if (c == '-')
      out.append("\\-");
    else
      out.push_back(c);
  }
  return out;
}

// The markup (see the top of this file) as roff.
std::string RoffText(absl::string_view text) {
  std::string out;
  bool in_paragraph = false, in_block = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty()) {
      if (in_block) out.append(".fi\n");
      in_paragraph = in_block = false;
      continue;
    }
    const bool preformatted = absl::StartsWith(line, "  ");
    if (preformatted && !in_block) {
      out.append(in_paragraph ? ".br\n.nf\n" : ".PP\n.nf\n");
      in_block = true;
    } else if (!preformatted && in_block) {
      out.append(".fi\n");
      in_block = false;
    } else if (!preformatted && !in_paragraph) {
      out.append(".PP\n");
    }
    in_paragraph = true;
    absl::StrAppend(&out, RoffLine(line), "\n");
  }
  if (in_block) out.append(".fi\n");
  return out;
}

}  // namespace

std::string OverviewHelp(absl::Span<const Verb *const> verbs) {
  std::string out = absl::StrCat(kName, "\n\nUsage: ");
  for (const Verb *verb : verbs) absl::StrAppend(&out, ShortSynopsis(*verb), "\n       ");
  absl::StrAppend(&out, "allocscope help [VERB]\n       allocscope --version\n\n", kIntro,
                  "\n\nVerbs:\n");
  for (const Verb *verb : verbs)
    absl::StrAppend(&out, "  ", verb->name, std::string(8 - verb->name.size(), ' '), verb->summary,
                    "\n");
  absl::StrAppend(&out, "\nExit status:\n", kExitStatus, "\n\nEnvironment:\n", kEnvironment,
                  "\n\n`allocscope help VERB` (or `allocscope VERB --help`) describes a verb "
                  "and its\nflags; `man allocscope` has everything.\n");
  return out;
}

std::string VerbHelp(const Verb &verb) {
  const std::string usage = absl::StrCat("Usage: allocscope ", verb.name, " ");
  std::string out = absl::StrCat("allocscope ", verb.name, " - ", verb.summary, "\n\n", usage,
                                 Wrap(verb.usage, static_cast<int>(usage.size())), "\n\n",
                                 verb.description, "\n");
  if (verb.flags.empty()) return out;
  out.append("\nFlags:\n");
  for (const VerbFlag &f : verb.flags) {
    const std::string usage = absl::StrCat("  ", FlagUsage(f));
    std::string line = usage;
    int column = static_cast<int>(usage.size());
    if (column + 2 > kFlagColumn) {
      line.append("\n");
      column = 0;
    }
    line.append(std::string(static_cast<size_t>(kFlagColumn - column), ' '));
    absl::StrAppend(&out, line, Wrap(FlagDescription(RegisteredFlag(f)), kFlagColumn), "\n");
  }
  return out;
}

std::string ManPage(absl::Span<const Verb *const> verbs, absl::string_view version) {
  std::string out = absl::StrCat(
      ".TH ALLOCSCOPE 1 \"\" \"allocscope ", version, "\" \"User Commands\"\n.SH NAME\n",
      RoffLine(absl::StrReplaceAll(kName, {{": ", " - "}})), "\n.SH SYNOPSIS\n");
  for (const Verb *verb : verbs) absl::StrAppend(&out, RoffLine(Synopsis(*verb)), "\n.br\n");
  absl::StrAppend(&out, RoffLine("allocscope help [VERB]"), "\n.br\n",
                  RoffLine("allocscope --version"), "\n.SH DESCRIPTION\n", RoffText(kIntro));
  out.append(".SH COMMANDS\n");
  for (const Verb *verb : verbs) {
    absl::StrAppend(&out, ".SS \"allocscope ", verb->name, "\"\n",
                    RoffLine(absl::StrCat(verb->summary, ":")), "\n.br\n",
                    RoffLine(Synopsis(*verb)), "\n", RoffText(verb->description));
    for (const VerbFlag &f : verb->flags)
      absl::StrAppend(&out, ".TP\n.B ", RoffLine(FlagUsage(f)), "\n",
                      RoffLine(FlagDescription(RegisteredFlag(f))), "\n");
  }
  absl::StrAppend(&out, ".SH \"EXIT STATUS\"\n", RoffText(kExitStatus), ".SH ENVIRONMENT\n",
                  RoffText(kEnvironment));
  return out;
}

}  // namespace allocscope::cmd
