// elf_file.h: what the command reads from ELF files without running them: whether a program
// goes through the dynamic loader (only then does LD_PRELOAD act), where a module's
// addresses start (to turn a module offset into the address addr2line wants), and the
// contents of a section (the jemalloc version inside the preload).
#pragma once

#include <elf.h>

#include <cstdint>
#include <string>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/status/statusor.h"

namespace allocscope::cmd {

class ElfFile {
 public:
  // Reads the headers of a 64-bit ELF file of this machine's byte order; an error for any
  // other file.
  static absl::StatusOr<ElfFile> Open(const std::string &path);

  // True if the program names an interpreter (PT_INTERP): the dynamic loader starts it and
  // reads LD_PRELOAD. A static-pie executable has PT_DYNAMIC (it relocates itself) but no
  // interpreter, and ignores the preload.
  bool has_interpreter() const;

  // The page-aligned lowest PT_LOAD address: what a module-relative offset (from the load
  // base dladdr gives) is added to for addr2line. 0 for PIE executables and shared
  // objects; 0x400000 for a typical non-PIE (ET_EXEC) one.
  uint64_t link_base() const;

  // The contents of the section called `name` (e.g. ".rodata").
  absl::StatusOr<std::string> Section(absl::string_view name) const;

  // The section table, names resolved.
  struct SectionInfo {
    std::string name;
    uint32_t type = 0;
    uint64_t flags = 0, addr = 0, offset = 0, size = 0, entsize = 0;
    uint32_t link = 0;
  };
  absl::StatusOr<std::vector<SectionInfo>> Sections() const;
  // A section's bytes (empty for SHT_NOBITS).
  absl::StatusOr<std::string> Contents(const SectionInfo &section) const;

 private:
  ElfFile(std::string path, const Elf64_Ehdr &header, std::vector<Elf64_Phdr> segments)
      : path_(std::move(path)), header_(header), segments_(std::move(segments)) {}

  std::string path_;
  Elf64_Ehdr header_;
  std::vector<Elf64_Phdr> segments_;
};

}  // namespace allocscope::cmd
