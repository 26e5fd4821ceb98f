// config.h: ALLOCSCOPE_CONF and allocscope_config().
//
// Grammar (jemalloc's MALLOC_CONF style): "key:value,key:value". Keys are
// case-insensitive; surrounding blanks are ignored. Booleans are true/false (also
// 1/0, yes/no, on/off); sizes are decimal with an optional K, M or G suffix (powers of
// 1024). A bad pair never brings the host down: it is reported in one line naming the
// source, the key, the value and what is accepted, and every other pair still applies.
// With strict:true (from this or an earlier configuration) a bad pair is fatal instead:
// the report is followed by abort().
//
// Keys implemented so far:
//   stats_print:BOOL   print the stats JSON on the report stream at exit
//   stats_file:PATH    write the stats JSON to PATH at exit ("%p" = pid)
//   log_file:PATH      send reports to PATH instead of stderr ("%p" = pid)
//   strict:BOOL        make bad configuration (and, later, API misuse) fatal
#pragma once

#include <limits.h>

#include <string_view>

namespace allocscope {

struct Config {
  bool strict = false;
  bool stats_print = false;
  char stats_file[PATH_MAX] = "";
  char log_file[PATH_MAX] = "";
};

// The process configuration. Written only by apply_config (under a lock); plain data,
// so it needs no constructor and survives until the last exit handler.
extern Config g_config;

// Applies `text` to g_config. `source` names it in reports ("ALLOCSCOPE_CONF",
// "allocscope_config"). Returns the number of bad pairs (0 = all applied).
int apply_config(std::string_view text, const char *source);

// Parses a size with an optional K/M/G suffix; false if `text` is not one or overflows.
bool parse_size(std::string_view text, size_t *out);

// Parses true/false, 1/0, yes/no, on/off (any case).
bool parse_bool(std::string_view text, bool *out);

}  // namespace allocscope
