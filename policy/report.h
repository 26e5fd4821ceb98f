// report.h: allocscope's one-line messages to the user, and the files it writes.
//
// Every message is one line, "allocscope: " followed by what happened, written with a
// single write(2) so lines from different threads and processes never interleave. It
// formats into a stack buffer and never allocates, so it is safe on a failing allocation
// path, in a fork child and at exit.
//
// Where a report goes: to the file named by log_file if one is set, otherwise to the
// stderr the process started with, and only while fd 2 still is that file: a daemon that
// closed fd 2 and opened its data file there gets no report lines in it (its reports go to
// log_file, or are dropped; log_file:/dev/stderr follows fd 2 wherever it points).
// allocscope holds no descriptor of its own between reports: a kept copy of a pipe or
// terminal would keep a pipeline or an ssh session from ending after a daemon detached. A report never blocks and never raises a signal: pipes and
// terminals are written through a non-blocking descriptor of our own (a reopened
// /proc/self/fd/2, so the program's file status flags are untouched), sockets with
// MSG_DONTWAIT, and SIGPIPE, SIGXFSZ and SIGTTOU are held off around the write (one our
// write raised is consumed). A report that cannot be written whole is dropped and counted
// (stats: reports_dropped). Thread cancellation is off while a report is written: malloc,
// where reports come from, is not a cancellation point.
//
// Output files (log_file, stats_file, fault.log, fault.record) are opened by open_output()
// only: no symbolic link anywhere in the path, never blocking (a FIFO is refused, not waited
// on), regular files of the caller's own with no other hard link (or /dev/null), and a name
// with "%p" (the pid) is created fresh for whole files. A refused path is one report naming
// the path and why, and nothing is written.
#pragma once

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <atomic>
#include <string_view>

namespace allocscope {

// printf-style; a trailing newline is added. Long messages are cut at 1 KiB. If the log
// file cannot be opened at that moment, the report goes to stderr.
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Like report() for text of any length ("allocscope: " + prefix + text + newline): the stats
// JSON is longer than report()'s line buffer. Longer than a pipe writes at once, it may wait
// up to a second for a slow reader (it is written at exit, not inside an allocation).
void report_text(const char *prefix, const char *text);

// Sends later reports to `path` (resolved now if relative; "%p" = pid), or back to the
// stderr the process started with for "" and "stderr", or to whatever fd 2 is at each report
// for "/dev/stderr" (for a program that redirects its own stderr to capture it). Each report
// opens the file, appends one line and closes it. The file must open now (created if
// missing). Returns 0 or -errno; on failure the destination is unchanged.
int set_report_file(const char *path);

// The values of the path keys, applied (control.cc calls these).
// An output file's path: absolute as given, relative resolved now against the current
// directory (not at each write: a process that changes directory, and its children, keep
// writing where it was configured). "%p" stays, for each process to expand. False if empty
// or too long.
bool output_path_value(std::string_view value, char (&resolved)[PATH_MAX]);
// log_file: output_path_value, then set_report_file; `resolved` is left as is on failure.
bool log_file_value(std::string_view value, char (&resolved)[PATH_MAX]);

// A path read by any thread at any time, fork children included, and changed rarely under
// the configuration lock (log_file, fault.log): two buffers, a change writes the one not
// in use and then publishes it, and a reader that finds its buffer rewritten meanwhile reads
// again. Readers take no lock (a lock may be held across fork, and a busy one used to send
// log_file reports to stderr).
class PublishedPath {
 public:
  void set(const char *path);  // "" = none; callers serialise changes
  // Copies the path to out; false if none is set.
  bool get(char *out, size_t cap) const;
  bool empty() const;

 private:
  static constexpr size_t kWords = PATH_MAX / sizeof(uint64_t);
  struct Buffer {
    std::atomic<uint64_t> seq;  // odd while being written
    std::atomic<uint64_t> words[kWords];
  };
  // No initialisers: zero static storage, no constructor to run, so an instance is ready
  // before any constructor of the program (which may configure and report) runs.
  Buffer buffers_[2];
  std::atomic<unsigned> current_;
};

// Opens an output file for a whole write (truncated; "%p" in the name: created, must not
// exist) or for appending lines (created if missing). Returns the fd, or -errno with *why
// set to the reason (a static string).
enum class Output { kWhole, kAppend };
int open_output(const char *path, Output how, const char **why);

// open_output, and on refusal one report: "KEY: cannot write 'EXPANDED': WHY".
int open_output_reported(const char *key, const char *path, Output how);

// Appends one line (parts joined) to the file at `path` (expanded, opened and closed);
// false if it could not be written. *why, if given, says why it could not be opened.
bool append_line(const char *path, const iovec *parts, int count, const char **why);

// Copies `path` into out with each "%p" replaced by the pid; false if it does not fit.
bool expand_path(const char *path, char *out, size_t cap);

// Writes all of buf to fd, retrying short writes, with SIGXFSZ held off (a file size limit
// is an error here, not a core dump). Returns false on an error.
bool write_all(int fd, const char *buf, size_t len);

}  // namespace allocscope
