// point_runner.cc: see point_runner.h. Each worker takes the next key under the lock,
// runs it without the lock, and records the result under it again.
#include "point_runner.h"

#include <algorithm>
#include <map>
#include <thread>

#include "absl/synchronization/mutex.h"

namespace allocscope::cmd {

absl::StatusOr<std::vector<Point>> RunPoints(std::optional<int64_t> last,
                                             const RunPointFn &run_point, int jobs,
                                             bool stop_on_unreached, Progress &progress,
                                             GroupRunner &runner) {
  absl::Mutex mu;
  int64_t next = 1;
  std::optional<int64_t> stop_at;  // the lowest not-reached key so far
  std::map<int64_t, Point> results;
  absl::Status error;

  const auto worker = [&] {
    while (true) {
      int64_t key;
      {
        absl::MutexLock lock(&mu);
        if (!error.ok() || (last && next > *last) || (stop_at && next > *stop_at)) return;
        key = next++;
      }
      if (runner.stopped()) return;
      absl::StatusOr<Point> point = run_point(key);
      absl::MutexLock lock(&mu);
      // Once stopped, a run in flight was killed by the stop: its outcome says nothing.
      if (runner.stopped()) return;
      if (!point.ok()) {
        error.Update(point.status());
        return;
      }
      const Outcome outcome = point->outcome;
      if (stop_on_unreached && outcome == Outcome::kNotReached) {
        if (stop_at && key > *stop_at) continue;  // dropped: not counted
        if (stop_at) {
          progress.Retract(Outcome::kNotReached);  // the one it replaces is dropped
          results.erase(*stop_at);
        }
        stop_at = key;
      }
      results.emplace(key, *std::move(point));
      progress.Update(outcome);
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < jobs && (!last || i < *last); ++i) threads.emplace_back(worker);
  for (std::thread &t : threads) t.join();
  if (!error.ok() && !runner.stopped()) return error;
  std::vector<Point> points;
  for (auto &[key, point] : results) points.push_back(std::move(point));
  return points;
}

}  // namespace allocscope::cmd
