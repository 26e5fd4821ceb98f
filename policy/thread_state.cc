// thread_state.cc: the per-thread state, and the hook that gives it back at thread exit.
#include "thread_state.h"

#include <pthread.h>

#include <atomic>

namespace allocscope {

__thread ThreadState t_state __attribute__((tls_model("initial-exec")));

namespace {

std::atomic<void (*)(ThreadState &)> g_exit_handler{nullptr};
pthread_key_t g_exit_key;
pthread_once_t g_exit_key_once = PTHREAD_ONCE_INIT;

void on_key_destroyed(void *state) {
  if (void (*handler)(ThreadState &) = g_exit_handler.load(std::memory_order_acquire))
    handler(*static_cast<ThreadState *>(state));
}

// Made by whichever comes first: start-up, or a thread armed before it (one started by
// another library's constructor, which may run before ours).
void create_exit_key() { pthread_key_create(&g_exit_key, on_key_destroyed); }

}  // namespace

void set_thread_exit_handler(void (*handler)(ThreadState &)) {
  pthread_once(&g_exit_key_once, create_exit_key);
  g_exit_handler.store(handler, std::memory_order_release);
}

void watch_thread_exit(ThreadState &t) {
  if (t.exit_watched) return;
  t.exit_watched = true;
  pthread_once(&g_exit_key_once, create_exit_key);
  pthread_setspecific(g_exit_key, &t);  // a slot in the thread descriptor: no allocation
}

}  // namespace allocscope
