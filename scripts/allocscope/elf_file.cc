// elf_file.cc: see elf_file.h. Reads with pread from an O_CLOEXEC descriptor; every offset and size
// from the file is checked against the file's size before it is used.
#include "elf_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace allocscope::cmd {
namespace {

// An open file, closed when it goes out of scope.
class File {
 public:
  explicit File(const std::string &path) : fd_(open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
  ~File() {
    if (fd_ >= 0) close(fd_);
  }
  File(const File &) = delete;
  File &operator=(const File &) = delete;

  bool ok() const { return fd_ >= 0; }
  uint64_t size() const {
    struct stat st;
    return fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  }
  // Reads exactly `len` bytes at `offset`, if the file has them.
  bool Read(uint64_t offset, void *buf, uint64_t len) const {
    if (offset > size() || len > size() - offset) return false;
    char *p = static_cast<char *>(buf);
    while (len > 0) {
      const ssize_t n = pread(fd_, p, len, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      p += n;
      offset += static_cast<uint64_t>(n);
      len -= static_cast<uint64_t>(n);
    }
    return true;
  }

 private:
  int fd_;
};

constexpr unsigned char kNativeData =
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB;

}  // namespace

absl::StatusOr<ElfFile> ElfFile::Open(const std::string &path) {
  File file(path);
  if (!file.ok()) return absl::NotFoundError(absl::StrCat(path, ": ", strerror(errno)));
  Elf64_Ehdr header;
  if (!file.Read(0, &header, sizeof(header)) || memcmp(header.e_ident, ELFMAG, SELFMAG) != 0)
    return absl::InvalidArgumentError(absl::StrCat(path, ": not an ELF file"));
  if (header.e_ident[EI_CLASS] != ELFCLASS64 || header.e_ident[EI_DATA] != kNativeData)
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a 64-bit ELF file of this machine's byte order"));
  if (header.e_phnum != 0 && header.e_phentsize != sizeof(Elf64_Phdr))
    return absl::InvalidArgumentError(absl::StrCat(path, ": unexpected program header size"));
  std::vector<Elf64_Phdr> segments(header.e_phnum);
  if (!file.Read(header.e_phoff, segments.data(), segments.size() * sizeof(Elf64_Phdr)))
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated program headers"));
  return ElfFile(path, header, std::move(segments));
}

bool ElfFile::has_interpreter() const {
  for (const Elf64_Phdr &p : segments_)
    if (p.p_type == PT_INTERP) return true;
  return false;
}

uint64_t ElfFile::link_base() const {
  bool found = false;
  uint64_t lowest = 0;
  for (const Elf64_Phdr &p : segments_) {
    if (p.p_type != PT_LOAD) continue;
    if (!found || p.p_vaddr < lowest) lowest = p.p_vaddr;
    found = true;
  }
  return lowest & ~uint64_t{0xfff};
}

absl::StatusOr<std::vector<ElfFile::SectionInfo>> ElfFile::Sections() const {
  File file(path_);
  if (!file.ok()) return absl::NotFoundError(absl::StrCat(path_, ": ", strerror(errno)));
  // SHN_XINDEX and e_shnum 0 mean the counts live in section 0: only objects with 65280
  // or more sections do that, and nothing the command reads is one.
  if (header_.e_shentsize != sizeof(Elf64_Shdr) || header_.e_shnum == 0 ||
      header_.e_shstrndx == SHN_UNDEF || header_.e_shstrndx >= header_.e_shnum)
    return absl::InvalidArgumentError(absl::StrCat(path_, ": no usable section table"));
  std::vector<Elf64_Shdr> sections(header_.e_shnum);
  if (!file.Read(header_.e_shoff, sections.data(), sections.size() * sizeof(Elf64_Shdr)))
    return absl::InvalidArgumentError(absl::StrCat(path_, ": truncated section table"));
  const Elf64_Shdr &names = sections[header_.e_shstrndx];
  std::string name_table(names.sh_size, '\0');
  if (!file.Read(names.sh_offset, name_table.data(), name_table.size()))
    return absl::InvalidArgumentError(absl::StrCat(path_, ": truncated section names"));
  std::vector<SectionInfo> out;
  for (const Elf64_Shdr &s : sections) {
    SectionInfo info;
    if (s.sh_name < name_table.size()) info.name = name_table.c_str() + s.sh_name;
    info.type = s.sh_type;
    info.flags = s.sh_flags;
    info.addr = s.sh_addr;
    info.offset = s.sh_offset;
    info.size = s.sh_size;
    info.entsize = s.sh_entsize;
    info.link = s.sh_link;
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<std::string> ElfFile::Contents(const SectionInfo &section) const {
  if (section.type == SHT_NOBITS) return std::string();
  File file(path_);
  if (!file.ok()) return absl::NotFoundError(absl::StrCat(path_, ": ", strerror(errno)));
  std::string contents(section.size, '\0');
  if (!file.Read(section.offset, contents.data(), contents.size()))
    return absl::InvalidArgumentError(absl::StrCat(path_, ": truncated section ", section.name));
  return contents;
}

absl::StatusOr<std::string> ElfFile::Section(absl::string_view name) const {
  absl::StatusOr<std::vector<SectionInfo>> sections = Sections();
  if (!sections.ok()) return sections.status();
  for (const SectionInfo &s : *sections)
    if (s.name == name && s.type != SHT_NOBITS) return Contents(s);
  return absl::NotFoundError(absl::StrCat(path_, ": no section ", name));
}

}  // namespace allocscope::cmd
