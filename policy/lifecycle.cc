// lifecycle.cc: see lifecycle.h.
#include "lifecycle.h"

#include <pthread.h>
#include <stdlib.h>

#include "atomic_reserve.h"
#include "backend.h"
#include "budget.h"
#include "check.h"
#include "control.h"
#include "counters.h"
#include "fault_events.h"
#include "gate.h"
#include "live_page.h"
#include "observe.h"
#include "options.h"
#include "pool.h"
#include "reclaim.h"
#include "region.h"
#include "report.h"
#include "reserve.h"
#include "scope.h"
#include "sys.h"
#include "thread_state.h"
#include "tree_budget.h"

namespace allocscope {
namespace lifecycle {
namespace {

struct ForkHooks {
  void (*prefork)();
  void (*postfork_parent)();
  void (*postfork_child)();
};

// Every module that holds a lock, in the order of its lock's LockRank (mutex.h). When a
// module gets a lock, it gets a row here.
constexpr ForkHooks kFork[] = {
    {options::prefork, options::postfork_parent, options::postfork_child},  // kConfig
    {reclaim::prefork, reclaim::postfork_parent, reclaim::postfork_child},  // kReclaimRegistry
    {pool::prefork, pool::postfork_parent, pool::postfork_child},           // kPoolList, kPool
    {reserve::prefork, reserve::postfork_parent, reserve::postfork_child},  // kReserveArena
    {atomic_reserve::prefork, atomic_reserve::postfork_parent,
     atomic_reserve::postfork_child},                                       // kAtomicReserveArena
    {budget::prefork, budget::postfork_parent, budget::postfork_child},     // kBudget, kBudgetWait
    {region::prefork, region::postfork_parent, region::postfork_child},     // kRegion
};
constexpr int kForkCount = sizeof(kFork) / sizeof(kFork[0]);

void prefork() {
  for (const ForkHooks &m : kFork) m.prefork();
}
void postfork_parent() {
  for (int i = kForkCount - 1; i >= 0; --i) kFork[i].postfork_parent();
}
void postfork_child() {
  for (int i = kForkCount - 1; i >= 0; --i) kFork[i].postfork_child();
  fault_events::after_fork_child();
  observe::after_fork_child();
  live_page::after_fork_child();
}

void on_thread_exit(ThreadState &t) {
  EngineGuard guard;
  check::thread_exit(t);  // first: a failure check counts the thread's bytes up to here
  scope::thread_exit(t);
  reserve::release(t);
  budget::thread_exit(t);
  fault_events::thread_exiting();  // its alternate signal stack
}

}  // namespace

void start() {
  // jemalloc first: prepare handlers run in reverse order of registration, so ours (which
  // may call into jemalloc while holding our locks) run before jemalloc's own.
  je_free(je_malloc(1));
  stats::g_counters.started_ns.store(sys::now_ns());
  EngineGuard guard;
  set_thread_exit_handler(on_thread_exit);
  pthread_atfork(prefork, postfork_parent, postfork_child);
  // max_size's default: what the kernel would back (sys.h), unless ALLOCSCOPE_CONF says.
  const size_t backable = sys::largest_backable_size();
  if (backable < g_config.max_size.load()) g_config.max_size.store(backable);
  gate::publish_max_size(g_config.max_size.load());
  if (const char *conf = secure_getenv("ALLOCSCOPE_CONF")) apply_config(conf, "ALLOCSCOPE_CONF");
  // A descendant of a tree budget joins it whatever its configuration says (tree_budget.h);
  // a refused object was reported, and is fatal like bad configuration with strict:true.
  if (budget::join_tree_from_environment() != nullptr && g_config.strict.load()) {
    report("%s: strict:true, so a tree budget that cannot be joined is fatal", tree::kEnv);
    abort();
  }
}

void stop() { budget::process_exit(); }

}  // namespace lifecycle
}  // namespace allocscope
