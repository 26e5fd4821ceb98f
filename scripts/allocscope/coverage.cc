// coverage.cc: see coverage.h.
#include "coverage.h"

#include <elf.h>

#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "elf_file.h"
#include "paths.h"
#include "symbolize.h"

namespace allocscope::cmd {
namespace {

// The functions whose failure a sweep injects (the preload's entry points) that a
// program calls through the PLT. operator new and new[] in all their overloads are
// matched by their mangled prefixes.
bool IsAllocationFunction(absl::string_view name) {
  static constexpr absl::string_view kNames[] = {
      "malloc", "calloc", "realloc", "reallocarray", "strdup", "strndup", "posix_memalign",
      "aligned_alloc", "memalign", "valloc", "pvalloc"};
  if (const size_t at = name.find('@'); at != absl::string_view::npos) name = name.substr(0, at);
  for (const absl::string_view n : kNames)
    if (name == n) return true;
  return absl::StartsWith(name, "_Znw") || absl::StartsWith(name, "_Zna");
}

template <typename T>
T Load(const std::string &bytes, size_t at) {
  T v;
  memcpy(&v, bytes.data() + at, sizeof(T));
  return v;
}

}  // namespace

absl::StatusOr<std::vector<AllocationCall>> ScanAllocationCalls(const std::string &module_path) {
  absl::StatusOr<ElfFile> elf = ElfFile::Open(module_path);
  if (!elf.ok()) return elf.status();
  absl::StatusOr<std::vector<ElfFile::SectionInfo>> sections = elf->Sections();
  if (!sections.ok()) return sections.status();
  // GOT slot address -> allocation function, from the relocations against .dynsym.
  absl::flat_hash_map<uint64_t, std::string> slots;
  for (const ElfFile::SectionInfo &s : *sections) {
    if (s.type != SHT_RELA || s.link >= sections->size()) continue;
    const ElfFile::SectionInfo &symtab = (*sections)[s.link];
    if (symtab.type != SHT_DYNSYM || symtab.link >= sections->size()) continue;
    absl::StatusOr<std::string> relas = elf->Contents(s);
    absl::StatusOr<std::string> syms = elf->Contents(symtab);
    absl::StatusOr<std::string> names = elf->Contents((*sections)[symtab.link]);
    if (!relas.ok() || !syms.ok() || !names.ok()) continue;
    for (size_t at = 0; at + sizeof(Elf64_Rela) <= relas->size(); at += sizeof(Elf64_Rela)) {
      const auto r = Load<Elf64_Rela>(*relas, at);
      const uint32_t type = ELF64_R_TYPE(r.r_info), index = ELF64_R_SYM(r.r_info);
      if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) continue;
      if ((index + 1) * sizeof(Elf64_Sym) > syms->size()) continue;
      const auto sym = Load<Elf64_Sym>(*syms, index * sizeof(Elf64_Sym));
      if (sym.st_name >= names->size()) continue;
      const std::string name = names->c_str() + sym.st_name;
      if (IsAllocationFunction(name)) slots[r.r_offset] = name;
    }
  }
  // PLT entry address -> function: each entry's `jmp *disp32(%rip)` (ff 25) names a slot.
  absl::flat_hash_map<uint64_t, std::string> plt;
  for (const ElfFile::SectionInfo &s : *sections) {
    if (!absl::StartsWith(s.name, ".plt")) continue;
    absl::StatusOr<std::string> code = elf->Contents(s);
    if (!code.ok()) continue;
    const size_t entry = s.entsize >= 8 ? s.entsize : 16;
    for (size_t start = 0; start + entry <= code->size(); start += entry) {
      for (size_t i = start; i + 6 <= start + entry; ++i) {
        if (static_cast<unsigned char>((*code)[i]) != 0xff ||
            static_cast<unsigned char>((*code)[i + 1]) != 0x25)
          continue;
        const uint64_t next = s.addr + i + 6;
        const uint64_t slot = next + static_cast<int64_t>(Load<int32_t>(*code, i + 2));
        if (auto it = slots.find(slot); it != slots.end()) plt[s.addr + start] = it->second;
        break;
      }
    }
  }
  const uint64_t base = elf->link_base();
  std::vector<AllocationCall> calls;
  for (const ElfFile::SectionInfo &s : *sections) {
    if (!(s.flags & SHF_EXECINSTR) || absl::StartsWith(s.name, ".plt")) continue;
    absl::StatusOr<std::string> code = elf->Contents(s);
    if (!code.ok()) continue;
    for (size_t i = 0; i + 5 <= code->size(); ++i) {
      const unsigned char op = static_cast<unsigned char>((*code)[i]);
      if (op == 0xe8) {  // call rel32
        const uint64_t next = s.addr + i + 5;
        const uint64_t target = next + static_cast<int64_t>(Load<int32_t>(*code, i + 1));
        if (auto it = plt.find(target); it != plt.end())
          calls.push_back({it->second, next - 1 - base});
      } else if (op == 0xff && i + 6 <= code->size() &&
                 static_cast<unsigned char>((*code)[i + 1]) == 0x15) {  // call *disp32(%rip)
        const uint64_t next = s.addr + i + 6;
        const uint64_t slot = next + static_cast<int64_t>(Load<int32_t>(*code, i + 2));
        if (auto it = slots.find(slot); it != slots.end())
          calls.push_back({it->second, next - 1 - base});
      }
    }
  }
  return calls;
}

Json CoverageJson(int64_t points_run, std::optional<int64_t> points_known,
                  const std::vector<std::string> &modules,
                  const absl::flat_hash_set<std::string> &failed,
                  const absl::flat_hash_set<std::string> &executed, Symbolizer &symbolizer) {
  Json scanned{Json::Array{}};
  for (const std::string &path : modules) {
    const std::string name = Basename(path);
    absl::StatusOr<std::vector<AllocationCall>> calls = ScanAllocationCalls(path);
    if (!calls.ok()) {
      scanned.push(Json::Object{{"module", name}, {"error", std::string(calls.status().message())}});
      continue;
    }
    std::vector<std::string> frames;
    for (const AllocationCall &c : *calls) frames.push_back(absl::StrFormat("%s+0x%x", name, c.site));
    symbolizer.Learn(path);
    symbolizer.Prepare(frames);
    int64_t hit = 0;
    Json unreached{Json::Array{}};
    for (size_t i = 0; i < calls->size(); ++i) {
      if (failed.contains(frames[i])) {
        ++hit;
        continue;
      }
      const Symbol symbol = symbolizer.Lookup(frames[i]);
      unreached.push(Json::Object{{"callsite", frames[i]},
                                  {"calls", (*calls)[i].function},
                                  {"caller", Json::Optional(symbol.function)},
                                  {"source", Json::Optional(symbol.source)},
                                  {"executed", executed.contains(frames[i])}});
    }
    scanned.push(Json::Object{{"module", name},
                              {"calls", static_cast<int64_t>(calls->size())},
                              {"failed", hit},
                              {"unreached", std::move(unreached)}});
  }
  return Json::Object{{"points_run", points_run},
                      {"points_known", Json::Optional(points_known)},
                      {"allocation_calls", std::move(scanned)}};
}

}  // namespace allocscope::cmd
