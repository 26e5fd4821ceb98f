// shard.h: which of a sweep's points this invocation runs. --shard K/N splits the points
// between N machines by a hash of each point's id (so every machine agrees without
// talking to the others, and a point stays in its shard whatever else changes);
// --sample N --seed S runs N points drawn with a seeded generator of our own (the same
// draw on every machine and library); --resume skips the points a report already has.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"

namespace allocscope::cmd {

// --shard K/N: 1 <= K <= N.
struct ShardSpec {
  int64_t index = 0;  // K
  int64_t count = 0;  // N; 0: no sharding
};
bool AbslParseFlag(absl::string_view text, ShardSpec *out, std::string *error);
std::string AbslUnparseFlag(ShardSpec shard);

struct PointFilter {
  ShardSpec shard;
  absl::flat_hash_set<std::string> skip;  // ids --resume's report has
  bool Accepts(const std::string &id) const;
};

// True when the point with this id is in shard K of N (all points are in shard 1/1).
bool InShard(absl::string_view id, const ShardSpec &shard);

// `n` of the values 0 .. total-1, drawn without replacement with `seed`, ascending.
std::vector<int64_t> SampleIndices(int64_t total, int64_t n, uint64_t seed);

}  // namespace allocscope::cmd
