// workdir.cc: see workdir.h.
#include "workdir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace allocscope::cmd {
namespace {

// The names in a directory, "." and ".." left out; an error when it cannot be read.
absl::StatusOr<std::vector<std::string>> List(const std::string &dir) {
  DIR *d = opendir(dir.c_str());
  if (d == nullptr)
    return absl::UnavailableError(absl::StrCat("cannot read ", dir, ": ", strerror(errno)));
  std::vector<std::string> names;
  while (const dirent *e = readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  return names;
}

struct Tally {
  uint64_t bytes = 0, files = 0;
};

absl::Status Measure(const std::string &dir, const std::string &exclude, Tally *t) {
  absl::StatusOr<std::vector<std::string>> names = List(dir);
  if (!names.ok()) return names.status();
  for (const std::string &name : *names) {
    const std::string path = absl::StrCat(dir, "/", name);
    if (path == exclude) continue;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;  // gone since the listing
    if (S_ISREG(st.st_mode)) t->bytes += static_cast<uint64_t>(st.st_size);
    if (++t->files > kWorkdirMaxFiles || t->bytes > kWorkdirMaxBytes)
      return absl::FailedPreconditionError("over");
    if (S_ISDIR(st.st_mode))
      if (absl::Status s = Measure(path, exclude, t); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status CopyFile(const std::string &from, const std::string &to, const struct stat &st) {
  const int in = open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return absl::UnavailableError(absl::StrCat("cannot read ", from, ": ", strerror(errno)));
  const int out = open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st.st_mode & 07777);
  if (out < 0) {
    const int err = errno;
    close(in);
    return absl::UnavailableError(absl::StrCat("cannot create ", to, ": ", strerror(err)));
  }
  char buf[65536];
  ssize_t n;
  absl::Status status;
  while ((n = read(in, buf, sizeof(buf))) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || write(out, buf, static_cast<size_t>(n)) != n) {
      status = absl::UnavailableError(absl::StrCat("cannot copy ", from, ": ", strerror(errno)));
      break;
    }
  }
  // The modification time too: make-like programs compare them.
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  futimens(out, times);
  close(in);
  close(out);
  return status;
}

}  // namespace

absl::StatusOr<uint64_t> MeasureWorkdir(const std::string &dir, const std::string &exclude) {
  Tally t;
  if (absl::Status s = Measure(dir, exclude, &t); !s.ok()) {
    if (!absl::IsFailedPrecondition(s)) return s;
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s holds more than %d MiB or %d files, too much to copy for every run (each run starts "
        "in a fresh copy of it): start the sweep in a smaller directory, give one to copy with "
        "--workdir-template DIR, or let the runs share it with --shared-cwd",
        dir, kWorkdirMaxBytes >> 20, kWorkdirMaxFiles));
  }
  return t.bytes;
}

absl::Status CopyTree(const std::string &from, const std::string &to, const std::string &exclude) {
  struct stat top;
  if (stat(from.c_str(), &top) != 0)
    return absl::UnavailableError(absl::StrCat("cannot read ", from, ": ", strerror(errno)));
  // Writable while it is filled; its own mode at the end.
  if (mkdir(to.c_str(), 0700) != 0)
    return absl::UnavailableError(absl::StrCat("cannot create ", to, ": ", strerror(errno)));
  absl::StatusOr<std::vector<std::string>> names = List(from);
  if (!names.ok()) return names.status();
  for (const std::string &name : *names) {
    const std::string src = absl::StrCat(from, "/", name), dst = absl::StrCat(to, "/", name);
    if (src == exclude) continue;
    struct stat st;
    if (lstat(src.c_str(), &st) != 0) continue;
    absl::Status s;
    if (S_ISDIR(st.st_mode)) {
      s = CopyTree(src, dst, exclude);
    } else if (S_ISREG(st.st_mode)) {
      s = CopyFile(src, dst, st);
    } else if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      const ssize_t n = readlink(src.c_str(), target.data(), target.size());
      if (n >= 0) {
        target.resize(static_cast<size_t>(n));
        if (symlink(target.c_str(), dst.c_str()) != 0)
          s = absl::UnavailableError(absl::StrCat("cannot create ", dst, ": ", strerror(errno)));
      }
    }
    if (!s.ok()) return s;
  }
  // The directory's own mode last, in case it is read-only.
  chmod(to.c_str(), top.st_mode & 07777);
  return absl::OkStatus();
}

}  // namespace allocscope::cmd
