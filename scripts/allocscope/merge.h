// merge.h: reading a sweep's JSON report back (for --resume, --replay and `sweep merge`)
// and merging the reports of shards into one.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "json.h"

namespace allocscope::cmd {

// The report at `path`, checked to be a sweep report of this schema (kReportSchema). An
// error names the file and what is wrong.
absl::StatusOr<Json> ReadReport(const std::string &path);

// One report of the points of all of them (by id; a point in two reports is taken from
// the first), in point order, with the summary counted again. The reports must be of the
// same command and mode (shards of one sweep, or a sweep and its resumption); `names`
// are their files, for messages and the result's "selection".
absl::StatusOr<Json> MergeReports(const std::vector<Json> &reports,
                                  const std::vector<std::string> &names);

}  // namespace allocscope::cmd
