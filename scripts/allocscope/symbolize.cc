// symbolize.cc: see symbolize.h.
#include "symbolize.h"

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <sys/stat.h>

#include <cxxabi.h>
#include <elf.h>

#include <cstdlib>
#include <cstring>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "elf_file.h"
#include "options.h"
#include "paths.h"
#include "subprocess.h"

namespace allocscope::cmd {
namespace {

constexpr size_t kAddressesPerRun = 256;  // addr2line's command line stays short
constexpr absl::Duration kAddr2lineTimeout = absl::Seconds(120);

// The multiarch directory name (x86_64-linux-gnu on Debian): that of the C library this
// process runs with.
std::string Multiarch() {
  Dl_info info;
  const void *libc_function = reinterpret_cast<const void *>(&gnu_get_libc_version);
  if (dladdr(libc_function, &info) == 0 || info.dli_fname == nullptr) return "";
  return Basename(Dirname(info.dli_fname));
}

bool IsHexAddress(absl::string_view line) {
  if (!absl::ConsumePrefix(&line, "0x") || line.empty()) return false;
  for (const char c : line)
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace

absl::flat_hash_map<uint64_t, std::vector<SourcePlace>> ParseAddr2line(absl::string_view text) {
  absl::flat_hash_map<uint64_t, std::vector<SourcePlace>> entries;
  std::vector<SourcePlace> *current = nullptr;
  const std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  for (size_t i = 0; i < lines.size(); ++i) {
    if (IsHexAddress(lines[i])) {
      uint64_t address;
      if (absl::SimpleHexAtoi(lines[i], &address)) current = &entries[address];
      continue;
    }
    if (current == nullptr || i + 1 >= lines.size()) continue;
    absl::string_view function = lines[i];
    absl::string_view source = lines[i + 1];
    ++i;
    // "file.c:12 (discriminator 3)": the discriminator tells basic blocks apart, not lines.
    if (const size_t d = source.find(" (discriminator "); d != absl::string_view::npos)
      source = source.substr(0, d);
    SourcePlace place;
    if (function != "??") place.function = std::string(function);
    if (!absl::StartsWith(source, "??")) place.source = std::string(source);
    current->push_back(std::move(place));
  }
  return entries;
}

Symbolizer::Symbolizer(const std::string &executable) {
  if (!executable.empty()) dirs_.push_back(Dirname(executable));
  if (const char *ld = getenv("LD_LIBRARY_PATH"))
    for (absl::string_view d : absl::StrSplit(ld, ':', absl::SkipEmpty())) dirs_.emplace_back(d);
  const std::string arch = Multiarch();
  for (const char *prefix : {"/lib", "/usr/lib", "/usr/local/lib"}) {
    if (!arch.empty()) dirs_.push_back(absl::StrCat(prefix, "/", arch));
    dirs_.push_back(absl::StrCat(prefix, "64"));
    dirs_.push_back(prefix);
  }
  if (!executable.empty()) Learn(executable);
}

void Symbolizer::Learn(const std::string &path) {
  if (path.empty() || path == "?") return;
  paths_.try_emplace(Basename(path), path);
}

std::optional<std::string> Symbolizer::ModulePath(const std::string &name) {
  if (auto it = paths_.find(name); it != paths_.end()) return it->second;
  std::optional<std::string> found;
  for (const std::string &dir : dirs_) {
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (IsRegularFile(candidate)) {
      found = candidate;
      break;
    }
  }
  paths_[name] = found;
  return found;
}

void Symbolizer::Prepare(const std::vector<std::string> &frames) {
  // For each module found: the frames in it and the addresses addr2line wants for them.
  absl::flat_hash_map<std::string, std::vector<std::pair<std::string, uint64_t>>> wanted;
  absl::flat_hash_set<std::string> seen;
  absl::flat_hash_map<std::string, std::optional<uint64_t>> bases;  // by module path
  for (const std::string &frame : frames) {
    if (frame.empty() || cache_.contains(frame) || !seen.insert(frame).second) continue;
    std::string_view module_name;  // the engine's parser speaks std::string_view
    uintptr_t offset = 0;
    std::optional<std::string> path;
    std::optional<uint64_t> base;
    if (parse_callsite(frame, &module_name, &offset)) {
      path = ModulePath(std::string(module_name));
      if (path) {
        auto [it, added] = bases.try_emplace(*path);
        if (added) {
          absl::StatusOr<ElfFile> elf = ElfFile::Open(*path);
          if (elf.ok()) it->second = elf->link_base();
        }
        base = it->second;
      }
    }
    if (base) {
      wanted[*path].emplace_back(frame, offset + *base);
    } else {
      cache_[frame] = Symbol{frame, path, std::nullopt, std::nullopt, {}};
    }
  }
  for (const auto &[path, items] : wanted) {
    for (size_t i = 0; i < items.size(); i += kAddressesPerRun) {
      const size_t end = std::min(items.size(), i + kAddressesPerRun);
      RunAddr2line(path,
                   {items.begin() + static_cast<long>(i), items.begin() + static_cast<long>(end)});
    }
  }
}

void Symbolizer::RunAddr2line(const std::string &path,
                              const std::vector<std::pair<std::string, uint64_t>> &items) {
  std::vector<std::string> argv = {"addr2line", "-a", "-f", "-C", "-i", "-e", path};
  for (const auto &item : items) argv.push_back(absl::StrFormat("0x%x", item.second));
  // Without addr2line, or when it fails, the frames stay unnamed.
  const absl::StatusOr<std::string> out = CaptureOutput(argv, kAddr2lineTimeout);
  const auto entries = ParseAddr2line(out.ok() ? *out : "");
  bool any_line = false;
  for (const auto &[frame, address] : items) {
    Symbol symbol{frame, path, std::nullopt, std::nullopt, {}};
    if (auto it = entries.find(address); it != entries.end() && !it->second.empty()) {
      symbol.function = it->second.front().function;
      symbol.source = it->second.front().source;
      symbol.inlined.assign(it->second.begin() + 1, it->second.end());
    }
    if (symbol.source) {
      any_line = true;
    } else {
      // No line: addr2line's name came from the symbol table, where it takes the nearest
      // symbol below the address whatever its size (an exported neighbour of a static
      // function): keep a name only when a symbol's extent holds the address.
      symbol.function = CoveringSymbol(path, address);
      symbol.inlined.clear();
    }
    cache_[frame] = std::move(symbol);
  }
  if (!any_line && !items.empty() && noted_.insert(path).second)
    notes_.push_back(absl::StrCat(
        Basename(path), " has no debug info: its frames are named from the symbol table where a "
        "symbol covers them, else '?' (install its -dbgsym package, or set DEBUGINFOD_URLS "
        "and fetch it with debuginfod-find debuginfo ", path, ")"));
}

std::optional<std::string> Symbolizer::CoveringSymbol(const std::string &path, uint64_t address) {
  auto [it, added] = symbols_.try_emplace(path);
  std::vector<FunctionSymbol> &table = it->second;
  if (added) {
    absl::StatusOr<ElfFile> elf = ElfFile::Open(path);
    absl::StatusOr<std::vector<ElfFile::SectionInfo>> sections =
        elf.ok() ? elf->Sections() : elf.status();
    if (sections.ok()) {
      // .symtab when the file has one (every function), else .dynsym (exported ones).
      for (const uint32_t wanted : {uint32_t{SHT_SYMTAB}, uint32_t{SHT_DYNSYM}}) {
        for (const ElfFile::SectionInfo &s : *sections) {
          if (s.type != wanted || s.link >= sections->size()) continue;
          absl::StatusOr<std::string> syms = elf->Contents(s);
          absl::StatusOr<std::string> names = elf->Contents((*sections)[s.link]);
          if (!syms.ok() || !names.ok()) continue;
          for (size_t at = 0; at + sizeof(Elf64_Sym) <= syms->size(); at += sizeof(Elf64_Sym)) {
            Elf64_Sym sym;
            memcpy(&sym, syms->data() + at, sizeof(sym));
            if (ELF64_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_size == 0 ||
                sym.st_shndx == SHN_UNDEF || sym.st_name >= names->size())
              continue;
            table.push_back({sym.st_value, sym.st_size, names->c_str() + sym.st_name});
          }
        }
        if (!table.empty()) break;
      }
    }
  }
  for (const FunctionSymbol &f : table) {
    if (address < f.start || address - f.start >= f.size) continue;
    int status = 0;
    char *demangled = abi::__cxa_demangle(f.name.c_str(), nullptr, nullptr, &status);
    std::string name = status == 0 && demangled != nullptr ? demangled : f.name;
    free(demangled);
    return name;
  }
  return std::nullopt;
}

Symbol Symbolizer::Lookup(const std::string &frame) {
  if (!cache_.contains(frame)) Prepare({frame});
  return cache_[frame];
}

}  // namespace allocscope::cmd
