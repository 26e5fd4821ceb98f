// live_files.cc: see live_files.h.
#include "live_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "paths.h"

namespace allocscope::cmd {
namespace {

// A directory of ours with no access for others (what the preload insists on too), opened
// without following a symbolic link; -1 otherwise.
int OpenPrivateDir(const std::string &path) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_uid != getuid() || (st.st_mode & 077) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// /proc/PID/stat's starttime; 0 if the process is gone.
uint64_t StartTicks(pid_t pid) {
  const std::string stat = ReadWholeFile(absl::StrCat("/proc/", pid, "/stat")).value_or("");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i)
    if (i == 22) return strtoull(field.c_str(), nullptr, 10);
  return 0;
}

std::string Comm(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/comm"));
  std::string comm;
  std::getline(in, comm);
  return comm;
}

enum class Found { kPage, kNone, kStale, kBadVersion, kBad };

// Opens DIR/PID.page (dir_fd) and checks it; *out on kPage, *why otherwise.
Found OpenIn(int dir_fd, const std::string &dir, pid_t pid, std::unique_ptr<MappedPage> *out,
             std::string *why) {
  const std::string name = absl::StrCat(pid, ".page");
  const std::string path = absl::StrCat(dir, "/", name);
  const int fd = openat(dir_fd, name.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return Found::kNone;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid() ||
      st.st_size < static_cast<off_t>(2 * sizeof(uint32_t))) {
    close(fd);
    *why = absl::StrCat(path, " is not a live page of yours");
    return Found::kBad;
  }
  uint32_t head[2] = {0, 0};
  if (pread(fd, head, sizeof(head), 0) != static_cast<ssize_t>(sizeof(head)) ||
      head[0] != live::kMagic) {
    close(fd);
    *why = absl::StrCat(path, " is not an allocscope live page");
    return Found::kBad;
  }
  if (head[1] != live::kVersion || st.st_size < static_cast<off_t>(live::kPageBytes)) {
    close(fd);
    *why = absl::StrCat("process ", pid, "'s live page (", path, ") is version ", head[1],
                        "; this allocscope reads version ", live::kVersion,
                        " (use the allocscope that started it)");
    return Found::kBadVersion;
  }
  void *map = mmap(nullptr, live::kPageBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    close(fd);
    *why = absl::StrCat("cannot map ", path, ": ", strerror(errno));
    return Found::kBad;
  }
  auto page = std::make_unique<MappedPage>(pid, path, fd, static_cast<live::Page *>(map));
  // The pid may have been reused since the page was made: then the page is stale.
  if (page->page().pid != pid || page->page().start_ticks != StartTicks(pid)) {
    unlinkat(dir_fd, name.c_str(), 0);
    *why = absl::StrCat("removed a stale page ", path, " (of an earlier process ", pid, ")");
    return Found::kStale;
  }
  *out = std::move(page);
  return Found::kPage;
}

// Reads one of the page's text fields under its seqlock.
std::string ReadText(const live::Page &page, const char *field, size_t size) {
  std::string copy(size, '\0');
  for (int attempt = 0; attempt < 100; ++attempt) {
    const uint64_t before = page.text_seq.load(std::memory_order_acquire);
    if (before & 1) {
      usleep(1000);
      continue;
    }
    memcpy(copy.data(), field, size);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (page.text_seq.load(std::memory_order_relaxed) == before) break;
  }
  copy.resize(strnlen(copy.data(), size));
  return copy;
}

}  // namespace

MappedPage::~MappedPage() {
  munmap(page_, live::kPageBytes);
  close(fd_);
}

std::string MappedPage::Json() const { return ReadText(*page_, page_->json, sizeof(page_->json)); }
std::string MappedPage::Summary() const {
  return ReadText(*page_, page_->summary, sizeof(page_->summary));
}

std::vector<std::string> LiveDirs() {
  std::vector<std::string> dirs;
  if (const char *runtime = getenv("XDG_RUNTIME_DIR"); runtime != nullptr && runtime[0] == '/')
    dirs.push_back(absl::StrCat(runtime, "/allocscope"));
  dirs.push_back(absl::StrCat("/tmp/allocscope-", getuid()));
  return dirs;
}

absl::StatusOr<pid_t> ParsePid(const std::string &text) {
  int pid;
  if (!absl::SimpleAtoi(text, &pid) || pid < 1)
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a process id (a number from 1)"));
  return static_cast<pid_t>(pid);
}

absl::StatusOr<std::unique_ptr<MappedPage>> OpenLivePage(pid_t pid) {
  struct stat st;
  if (kill(pid, 0) != 0 && errno == ESRCH)
    return absl::FailedPreconditionError(absl::StrCat("no process ", pid, " is running"));
  if (stat(absl::StrCat("/proc/", pid).c_str(), &st) != 0)
    return absl::FailedPreconditionError(absl::StrCat("no process ", pid, " is running"));
  if (st.st_uid != getuid())
    return absl::FailedPreconditionError(
        absl::StrCat("process ", pid, " belongs to another user (uid ", st.st_uid,
                     "); allocscope reads and steers only your own processes"));
  std::string why;
  for (const std::string &dir : LiveDirs()) {
    const int dir_fd = OpenPrivateDir(dir);
    if (dir_fd < 0) continue;
    std::unique_ptr<MappedPage> page;
    const Found found = OpenIn(dir_fd, dir, pid, &page, &why);
    close(dir_fd);
    if (found == Found::kPage) return page;
    if (found == Found::kBadVersion || found == Found::kBad)
      return absl::FailedPreconditionError(why);
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "process ", pid, " (", Comm(pid), ") is not under allocscope with control:true (no ",
      LiveDirs().back(), "/", pid, ".page; allocscope run turns control on)"));
}

std::vector<std::unique_ptr<MappedPage>> ListLivePages() {
  std::vector<std::unique_ptr<MappedPage>> pages;
  for (const std::string &dir : LiveDirs()) {
    const int dir_fd = OpenPrivateDir(dir);
    if (dir_fd < 0) continue;
    DIR *d = fdopendir(dup(dir_fd));
    std::vector<pid_t> pids;
    while (dirent *e = d != nullptr ? readdir(d) : nullptr) {
      int pid;
      const std::string name = e->d_name;
      if (name.size() > 5 && name.compare(name.size() - 5, 5, ".page") == 0 &&
          absl::SimpleAtoi(name.substr(0, name.size() - 5), &pid) && pid > 0)
        pids.push_back(pid);
    }
    if (d != nullptr) closedir(d);
    std::sort(pids.begin(), pids.end());
    for (pid_t pid : pids) {
      if (kill(pid, 0) != 0 && errno == ESRCH) {  // gone: its page is stale
        unlinkat(dir_fd, absl::StrCat(pid, ".page").c_str(), 0);
        continue;
      }
      std::unique_ptr<MappedPage> page;
      std::string why;
      if (OpenIn(dir_fd, dir, pid, &page, &why) == Found::kPage) pages.push_back(std::move(page));
    }
    close(dir_fd);
  }
  return pages;
}

std::string HumanSize(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  static const char *const kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (value >= 1024 && unit < 3) {
    value /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.1f %s", value, kUnits[unit]);
}

}  // namespace allocscope::cmd
