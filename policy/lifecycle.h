// lifecycle.h: what happens once per process and once per thread: start-up, fork() and
// thread exit, in one place and one order.
//
//   start-up     lifecycle::start(), from the preload's constructor: jemalloc is
//                initialised first (so that its fork handlers run after ours), then the
//                thread-exit handler and the one set of fork handlers are installed, then
//                ALLOCSCOPE_CONF is applied.
//   fork()       prefork takes every lock of every module in the order of mutex.h's
//                LockRank (kFork below lists the modules in that order), postfork_parent
//                and postfork_child release them in reverse; each module's postfork_child
//                also forgets the threads the child does not have.
//   exit         lifecycle::stop(), from the preload's destructor and _exit.
//   thread exit  the exit handler (thread_state.h: watch_thread_exit) ends the thread's
//                part in a failure check (check.h), drops the scope counts the thread
//                holds, releases its reserve and takes it out of the budget.
#pragma once

namespace allocscope {
namespace lifecycle {

// Called once, from the preload's constructor (and by tests that link the engine).
void start();
// From the preload's destructor: what the process gives back at exit (its grant of a tree
// budget). A process that dies without it (_exit, a signal) is reaped by the tree.
void stop();

}  // namespace lifecycle
}  // namespace allocscope
