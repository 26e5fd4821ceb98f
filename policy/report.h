// report.h: allocscope's one-line messages to the user.
//
// Every message is one line, "allocscope: " followed by what happened, written with a
// single write(2) so lines from different threads and processes never interleave. It
// formats into a stack buffer and never allocates, so it is safe on a failing
// allocation path, in a fork child and at exit. Messages go to stderr, or to the file
// named by the log_file key (opened O_APPEND|O_NOFOLLOW|O_CLOEXEC for each message).
#pragma once

#include <cstddef>

namespace allocscope {

// printf-style; a trailing newline is added. Long messages are cut at 1 KiB. If the log
// file cannot be opened at that moment, the report goes to stderr.
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Like report() for text of any length ("allocscope: " + prefix + text + newline), in one
// writev(2): the stats JSON is longer than report()'s line buffer.
void report_text(const char *prefix, const char *text);

// Sends later reports to `path` ("" = stderr again): each report opens it (O_APPEND),
// writes one line and closes it, so no descriptor stays open in the program. "%p" in the
// path becomes the process id. Returns 0 or -errno (it must open now); on failure the
// destination is unchanged.
int set_report_file(const char *path);

// Opens `path` for writing a whole file (stats, records): truncated, created 0644,
// O_NOFOLLOW|O_CLOEXEC. "%p" in the path becomes the process id, so every process of a
// preloaded tree writes its own file. Returns the fd or -errno.
int open_output_file(const char *path);

// Copies `path` into out with each "%p" replaced by the pid; false if it does not fit.
bool expand_path(const char *path, char *out, size_t cap);

// Writes all of buf to fd, retrying short writes. Returns false on an error.
bool write_all(int fd, const char *buf, size_t len);

}  // namespace allocscope
