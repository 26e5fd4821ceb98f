// interrupt.h: SIGINT and SIGTERM during a sweep. Its runs are in sessions of their own,
// out of reach of the terminal's ^C, so the sweep takes these signals on a thread of its
// own, kills every run, and ends with status 130. Once the sweep is over, the signals
// act as they normally do.
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "absl/synchronization/mutex.h"

namespace allocscope::cmd {

class InterruptWatch {
 public:
  // Blocks SIGINT and SIGTERM in the calling thread, so construct it before starting any
  // other thread (they inherit the mask), and starts the thread that takes them: each
  // one calls on_signal.
  explicit InterruptWatch(std::function<void()> on_signal);
  ~InterruptWatch() { Release(); }
  InterruptWatch(const InterruptWatch &) = delete;
  InterruptWatch &operator=(const InterruptWatch &) = delete;

  // From now on a SIGINT or SIGTERM ends the process as if it had never been blocked;
  // on_signal is not running and will not run again (what it uses may go away).
  void Release();

  bool interrupted() const { return state_->interrupted.load(); }

 private:
  // Shared with the thread, which may outlive this object.
  struct State {
    absl::Mutex mu;
    std::function<void()> on_signal;
    std::atomic<bool> interrupted{false};
    bool released ABSL_GUARDED_BY(mu) = false;
  };
  std::shared_ptr<State> state_;
};

}  // namespace allocscope::cmd
