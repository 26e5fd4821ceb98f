// live_files.h: finding and opening the live pages of processes running under allocscope
// with control:true (policy/live_page.h says where the preload puts them and why they are
// safe to trust: a directory of the user's own, mode 0700, files opened O_NOFOLLOW).
//
// Every refusal is one line that names the process and what is wrong: no such process,
// another user's, not under allocscope (no page), or a page of a version this command
// does not read. Pages of processes that are gone (or whose pid now belongs to another
// process) are stale: listing removes them.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "live_page_format.h"

namespace allocscope::cmd {

// The directories the preload may have put pages in, the preferred first:
// $XDG_RUNTIME_DIR/allocscope and /tmp/allocscope-UID.
std::vector<std::string> LiveDirs();

// One process's page, mapped (read and write: ctl posts requests in it).
class MappedPage {
 public:
  MappedPage(pid_t pid, std::string path, int fd, live::Page *page)
      : pid_(pid), path_(std::move(path)), fd_(fd), page_(page) {}
  ~MappedPage();
  MappedPage(const MappedPage &) = delete;
  MappedPage &operator=(const MappedPage &) = delete;

  pid_t pid() const { return pid_; }
  const std::string &path() const { return path_; }
  int fd() const { return fd_; }  // for flock: one ctl at a time
  live::Page &page() const { return *page_; }

  // The JSON or the summary text, copied consistently (the page's seqlock).
  std::string Json() const;
  std::string Summary() const;

 private:
  pid_t pid_;
  std::string path_;
  int fd_;
  live::Page *page_;
};

// Parses a PID operand: a decimal number from 1; an InvalidArgument error naming it.
absl::StatusOr<pid_t> ParsePid(const std::string &text);

// The page of `pid`, or a FailedPrecondition error whose message is the one-line refusal.
absl::StatusOr<std::unique_ptr<MappedPage>> OpenLivePage(pid_t pid);

// Every live process's page (of this user), in pid order; stale pages are removed.
std::vector<std::unique_ptr<MappedPage>> ListLivePages();

// The size as the summary prints it ("12.0 MiB").
std::string HumanSize(uint64_t bytes);

}  // namespace allocscope::cmd
