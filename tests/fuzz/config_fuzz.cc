// config_fuzz.cc: a libFuzzer target for the ALLOCSCOPE_CONF parser (apply_config in
// policy/config.h), linked with the engine directly.
//
// Each input is one configuration text. The harness checks the parser's contract:
//   - apply_config returns the number of bad pairs, and every bad pair produces exactly
//     one report: the reports are captured in a file and counted, and the count must equal
//     the return value;
//   - every report is one line of at most 1 KiB that starts with "allocscope: ";
//   - the return value is at most the number of comma-separated pairs.
// A mismatch aborts (a finding). ASan/UBSan (the fuzz build uses both) catch the rest.
//
// What the harness neutralises, so that an input cannot hurt the machine or stop the run:
//   - strict:true aborts by design after a bad pair: a strict pair whose value parses as
//     true is rewritten to false, and strict is reset before each input;
//   - path keys (log_file, stats_file, fault.log, fault.record, and any other key whose
//     name mentions file, log, record or path) would create files wherever the input
//     says: their values are rewritten to paths inside a private temporary directory. A
//     log_file value becomes the capture file itself (as "...%p", so the %p expansion
//     still runs), so reports keep landing where they are counted; an empty value stays
//     empty and a value of 1 KiB or more becomes an equally long name (both still bad);
//   - everything else (limit, policy, kv_window, rules, fault.*) only changes engine
//     state, which is reset to the defaults after each input.
// The rewritten text has the same pairs in the same order, so the bad-pair count still
// means what the input meant.
//
// CONFIG_FUZZ_MASK_NEWLINES=1 turns every '\n' of an input into '\t' (a blank to the parser
// as well) to fuzz past a known finding: a newline inside a bad pair splits its report.
//
// Built as a fuzzer only with clang (-Dfuzz=true, see tests/fuzz/meson.build); the same
// file with replay_main.cc is a plain program that runs the seed corpus in every build.
#include <ctype.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <string_view>

#include "backend.h"
#include "control.h"
#include "lifecycle.h"
#include "options.h"
#include "engine.h"
#include "report.h"

namespace {

std::string g_dir;          // private temporary directory
std::string g_capture;      // the capture file, as configured ("%p" in it)
std::string g_capture_now;  // ... expanded
std::string g_reset;        // configuration that puts every key back to its default
bool g_mask_newlines = false;

[[noreturn]] void finding(const char *what, std::string_view input, const std::string &reports) {
  fprintf(stderr, "config_fuzz: FINDING: %s\ninput (%zu bytes): \"", what, input.size());
  for (unsigned char c : input) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') fputc(c, stderr);
    else fprintf(stderr, "\\x%02x", c);
  }
  fprintf(stderr, "\"\nreports:\n%s\n", reports.c_str());
  abort();
}

std::string_view strip(std::string_view s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool is_path_key(std::string_view name) {
  std::string lower(name);
  for (char &c : lower) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return lower.find("file") != std::string::npos || lower.find("log") != std::string::npos ||
         lower.find("record") != std::string::npos || lower.find("path") != std::string::npos;
}

// The input with strict neutralised and path values moved into g_dir; the same pairs in
// the same order (apply_config's own splitting: ',' between pairs, the first ':' between
// key and value, blanks stripped).
std::string neutralise(std::string_view text, int *pairs) {
  std::string out;
  *pairs = 0;
  for (size_t pos = 0; pos <= text.size();) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    const std::string_view pair = text.substr(pos, comma - pos);
    if (pos != 0) out += ',';
    pos = comma + 1;
    if (!strip(pair).empty()) ++*pairs;
    const size_t colon = pair.find(':');
    if (colon == std::string_view::npos) {
      out.append(pair);
      continue;
    }
    const std::string_view name = strip(pair.substr(0, colon));
    const std::string_view value = strip(pair.substr(colon + 1));
    std::string replacement;
    bool replace = false;
    bool b;
    if (name.size() == 6 && strncasecmp(name.data(), "strict", 6) == 0 &&
        allocscope::parse_bool(value, &b) && b) {
      replacement = "false";
      replace = true;
    } else if (is_path_key(name) && !value.empty()) {
      replace = true;
      if (value.size() >= 1024)
        replacement = g_dir + "/" + std::string(value.size(), 'x');
      else if (name.size() == 8 && strncasecmp(name.data(), "log_file", 8) == 0)
        replacement = g_capture;
      else
        replacement = g_dir + "/out-%p";
    }
    if (!replace) {
      out.append(pair);
    } else {
      out.append(pair.substr(0, colon + 1));
      out += replacement;
    }
  }
  return out;
}

std::string read_capture() {
  std::string text;
  const int fd = open(g_capture_now.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  char buf[65536];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) text.append(buf, static_cast<size_t>(n));
  close(fd);
  return text;
}

void clear_capture() {
  const int fd = open(g_capture_now.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd >= 0) close(fd);
}

// Back to the defaults, reports to the (empty) capture file.
void reset_engine() {
  allocscope::g_config.strict.store(false);
  if (allocscope::apply_config(g_reset, "config_fuzz reset") != 0) {
    fprintf(stderr, "config_fuzz: the reset configuration was refused (keys changed?): %s\n",
            g_reset.c_str());
    abort();
  }
  allocscope::g_config.stats_file[0] = '\0';
  allocscope::g_config.log_file[0] = '\0';
  if (allocscope::set_report_file(g_capture.c_str()) != 0) {
    fprintf(stderr, "config_fuzz: cannot open the capture file %s\n", g_capture_now.c_str());
    abort();
  }
  clear_capture();
}

int remove_entry(const char *path, const struct stat *, int, struct FTW *) {
  remove(path);
  return 0;
}

void remove_dir() {
  if (!g_dir.empty()) nftw(g_dir.c_str(), remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  je_free(je_malloc(1));  // as the preload's constructor: jemalloc before the engine
  allocscope::lifecycle::start();
  const char *tmp = getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr && tmp[0] != '\0' ? tmp : "/tmp") +
                     "/allocscope-config-fuzz-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    perror("config_fuzz: mkdtemp");
    abort();
  }
  g_dir = tmpl;
  atexit(remove_dir);
  const char *mask = getenv("CONFIG_FUZZ_MASK_NEWLINES");
  g_mask_newlines = mask != nullptr && strcmp(mask, "1") == 0;
  g_capture = g_dir + "/reports-%p";
  g_capture_now = g_dir + "/reports-" + std::to_string(getpid());
  char buf[512];
  snprintf(buf, sizeof(buf),
           "policy:normal,limit:0,arena_limit:0,emergency:0,kv_threshold:64K,kv_direct:0,"
           "kv_guard:true,kv_window:64G,max_size:%lld,nofail_max:%d,nofail_overdraw_ms:0,"
           "retry_max:16,nofail_in_nowait:wait,stall_warn_ms:10000,rules:none,warn:true,"
           "warn_burst:10,strict:false,stats_print:false,fault.reset:true",
           static_cast<long long>(PTRDIFF_MAX), INT_MAX);
  g_reset = buf;
  reset_engine();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 8192) return -1;  // the grammar has nothing longer; keeps runs fast
  std::string_view input(reinterpret_cast<const char *>(data), size);
  // CONFIG_FUZZ_MASK_NEWLINES=1: '\n' in the input becomes '\t' (also a blank to the
  // parser, so it parses the same), to fuzz past the known finding that a newline inside
  // a bad pair splits its report over two lines.
  std::string masked;
  if (g_mask_newlines) {
    masked.assign(input);
    for (char &c : masked)
      if (c == '\n') c = '\t';
    input = masked;
  }
  int pairs = 0;
  const std::string text = neutralise(input, &pairs);

  const int bad = allocscope::apply_config(text, "ALLOCSCOPE_CONF");
  const std::string reports = read_capture();

  if (bad < 0 || bad > pairs) finding("apply_config returned more bad pairs than pairs", input, reports);
  int lines = 0;
  size_t start = 0;
  while (start < reports.size()) {
    size_t end = reports.find('\n', start);
    if (end == std::string::npos) finding("a report without its newline", input, reports);
    const std::string_view line(reports.data() + start, end - start);
    if (line.substr(0, 12) != "allocscope: ")
      finding("a report line that does not start with \"allocscope: \" (a message split over "
              "lines?)", input, reports);
    if (line.size() + 1 > 1024) finding("a report line longer than 1 KiB", input, reports);
    ++lines;
    start = end + 1;
  }
  if (lines != bad) {
    char what[160];
    snprintf(what, sizeof(what), "apply_config returned %d bad pairs, %d report lines were written",
             bad, lines);
    finding(what, input, reports);
  }
  reset_engine();
  return 0;
}
