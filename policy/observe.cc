// observe.cc: see observe.h.
#include "observe.h"


#include <atomic>

#include "event_hook.h"
#include "exit_signals.h"
#include "live_page.h"
#include "options.h"
#include "sys.h"
#include "thread_state.h"
#include "timeline.h"

namespace allocscope {
namespace event_hook {
std::atomic<Hook> g_hook{nullptr};
}  // namespace event_hook

namespace observe {
namespace {

std::atomic<bool> g_busy{false};
std::atomic<uint64_t> g_last_ns{0};

}  // namespace

void after_fork_child() { g_busy.store(false); }

void start() {
  if (!g_config.control.load() && g_config.timeline_file[0] == '\0') return;
  event_hook::set_hook(tick);
  exit_signals::on_exit_signal(finish);
}

void finish(int signal) {
  timeline::write(signal);
  live_page::close_page();
}

void tick() {
  // One thread at a time; an event inside our own work (an allocation a request makes)
  // finds it busy and goes on.
  if (g_busy.exchange(true, std::memory_order_acquire)) return;
  EngineGuard guard;
  live_page::poll();
  const uint64_t now = sys::now_ns();
  if (now - g_last_ns.load(std::memory_order_relaxed) >= kRefreshMs * sys::kNsPerMs) {
    g_last_ns.store(now, std::memory_order_relaxed);
    live_page::refresh(now);
    timeline::sample(now);
  }
  g_busy.store(false, std::memory_order_release);
}

}  // namespace observe
}  // namespace allocscope
