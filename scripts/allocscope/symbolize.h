// symbolize.h: "module+0xoffset" frames (as the preload writes them) turned into function
// names and source lines, with addr2line: one addr2line per module for all of its
// offsets, cached. Modules are found by the paths the records give, the program's own
// directory, LD_LIBRARY_PATH and the system library directories.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>
#include "absl/strings/string_view.h"

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

namespace allocscope::cmd {

// A function and its file:line, either unknown.
struct SourcePlace {
  std::optional<std::string> function;
  std::optional<std::string> source;
};

struct Symbol {
  std::string frame;
  std::optional<std::string> module;  // the module's path, when it was found
  std::optional<std::string> function;
  std::optional<std::string> source;
  std::vector<SourcePlace> inlined;  // the functions the place was inlined into, inner first
};

// `addr2line -a -f -i` output: for each address, the innermost (inlined) function and its
// line first, then the functions it was inlined into.
absl::flat_hash_map<uint64_t, std::vector<SourcePlace>> ParseAddr2line(absl::string_view text);

class Symbolizer {
 public:
  // `executable`: CMD's program, whose directory is searched first.
  explicit Symbolizer(const std::string &executable);

  // A module's path, from a record: frames naming its file name resolve to it.
  void Learn(const std::string &path);

  // Symbolises every frame not yet known, one addr2line run per module.
  void Prepare(const std::vector<std::string> &frames);

  // The frame symbolised (prepared on the spot if Prepare did not see it).
  Symbol Lookup(const std::string &frame);

  // One line per module for which addr2line found no debug info (so its frames carry a
  // function only where the symbol table covers the address), with how to get it.
  const std::vector<std::string> &notes() const { return notes_; }

 private:
  // A function symbol: [start, start + size) in link-time addresses.
  struct FunctionSymbol {
    uint64_t start, size;
    std::string name;
  };
  // The function whose symbol (.symtab, else .dynsym) covers `address`, demangled;
  // nullopt when no symbol's size reaches it.
  std::optional<std::string> CoveringSymbol(const std::string &path, uint64_t address);

  std::optional<std::string> ModulePath(const std::string &name);
  void RunAddr2line(const std::string &path,
                    const std::vector<std::pair<std::string, uint64_t>> &items);

  std::vector<std::string> dirs_;
  absl::flat_hash_map<std::string, std::optional<std::string>> paths_;  // by file name
  absl::flat_hash_map<std::string, Symbol> cache_;                      // by frame
  absl::flat_hash_map<std::string, std::vector<FunctionSymbol>> symbols_;  // by module path
  absl::flat_hash_set<std::string> noted_;                               // module paths
  std::vector<std::string> notes_;
};

}  // namespace allocscope::cmd
