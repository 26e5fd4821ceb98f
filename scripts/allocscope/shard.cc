// shard.cc: see shard.h.
#include "shard.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace allocscope::cmd {

bool AbslParseFlag(absl::string_view text, ShardSpec *out, std::string *error) {
  const size_t slash = text.find('/');
  int64_t k, n;
  if (slash == absl::string_view::npos || !absl::SimpleAtoi(text.substr(0, slash), &k) ||
      !absl::SimpleAtoi(text.substr(slash + 1), &n) || n < 1 || k < 1 || k > n) {
    *error = "expected K/N with 1 <= K <= N, e.g. 1/4";
    return false;
  }
  *out = {k, n};
  return true;
}

std::string AbslUnparseFlag(ShardSpec shard) {
  return shard.count == 0 ? "" : absl::StrCat(shard.index, "/", shard.count);
}

bool InShard(absl::string_view id, const ShardSpec &shard) {
  if (shard.count <= 1) return true;
  // FNV-1a of the id: fixed by the id alone, unlike std::hash.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : id) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return static_cast<int64_t>(h % static_cast<uint64_t>(shard.count)) == shard.index - 1;
}

bool PointFilter::Accepts(const std::string &id) const {
  return InShard(id, shard) && !skip.contains(id);
}

std::vector<int64_t> SampleIndices(int64_t total, int64_t n, uint64_t seed) {
  // splitmix64: a generator fixed by its definition (std::uniform_int_distribution's
  // output differs between standard libraries), so a seed names the same sample
  // everywhere.
  uint64_t state = seed;
  const auto next = [&state] {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  std::vector<int64_t> all(static_cast<size_t>(std::max<int64_t>(total, 0)));
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  const size_t take = static_cast<size_t>(std::min<int64_t>(n, total));
  // The first `take` steps of a Fisher-Yates shuffle.
  for (size_t i = 0; i < take; ++i) {
    const size_t j = i + static_cast<size_t>(next() % (all.size() - i));
    std::swap(all[i], all[j]);
  }
  all.resize(take);
  std::sort(all.begin(), all.end());
  return all;
}

}  // namespace allocscope::cmd
