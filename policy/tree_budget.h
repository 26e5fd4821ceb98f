// tree_budget.h: one limit for a process and all its descendants (limit_scope:tree).
//
// The first process creates a small shared-memory object (shm_open: mode 0600, O_EXCL,
// O_NOFOLLOW, a random name) and names it in the environment (ALLOCSCOPE_TREE), which
// descendants inherit across fork and exec. Every process of the tree under the preload
// maps it and takes a *grant* from the tree's limit: the tree's `charged` is the sum of the
// grants, never above the limit, and each process's own budget (budget.h) treats its grant
// as its limit. So the fast path stays as it is while the tree is far from its limit: a
// process asks the tree for more only when it has used up its room (about 1 MiB plus
// 96 KiB per thread at a time), and gives the surplus back when frees leave it with twice
// that. Refusals can therefore come while the tree's live bytes are below its limit by up
// to what the members hold unused: documented in the README.
//
// A member that dies, even by SIGKILL, leaves its grant in its slot; the slot is reaped when
// a request cannot be granted: its pid is gone (kill(pid, 0): ESRCH) or belongs to another
// process now (the start time differs). NOFAIL waiters sleep on a futex in the shared page,
// which every member's returned grant wakes.
//
// A process that clears ALLOCSCOPE_TREE (or execs with an environment without it) leaves
// the tree and runs under its own budget. The last member to leave removes the name: a
// descendant that execs after that runs under its own budget, and says so.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace allocscope {
namespace tree {

// The environment variable that names the tree's object.
inline constexpr char kEnv[] = "ALLOCSCOPE_TREE";

// Creates the tree with `limit` (and, for limit:cgroup, the cgroup directory whose limit
// it follows), joins it and sets ALLOCSCOPE_TREE. False, reported, if the system refuses.
bool create(int64_t limit, const char *cgroup_dir);
// Joins the tree ALLOCSCOPE_TREE names (a descendant, at start-up). False, reported, if it
// is missing, another user's, or of a layout this version does not know: then the process
// runs under its own budget.
bool join_from_environment();
// This process leaves the tree at exit: its grant goes back. Lock-free and
// async-signal-safe (it runs in _exit).
void leave();
// In a fork child: a slot of its own (its grant starts at nothing).
void postfork_child();

bool active();

// The tree's limit, which every member shares (set by any member: allocscope_limit_set,
// allocscope ctl).
int64_t limit();
void set_limit(int64_t bytes);
// The cgroup directory the tree's limit follows ("" = none), and its headroom.
const char *cgroup_dir();

// This process's grant.
int64_t grant();
// Adds at least `at_least` and at most `wanted` bytes to this process's grant, as the
// tree's limit allows (reaping dead members when it is short). Returns what was added.
int64_t take(int64_t wanted, int64_t at_least);
// Gives `bytes` of this process's grant back, waking NOFAIL waiters in the tree.
void give_back(int64_t bytes);

// NOFAIL waits across processes: waits until a member gives grant back (or wake() is
// called: a free in this process) or `timeout_ns` passes (cancellation deferred, as every
// wait of an allocation).
void wait(uint64_t timeout_ns);
void wake();
// Members alive (slots in use), for "could another process free?".
int members();

struct Stats {
  int64_t limit, charged, grant;
  int members;
};
Stats stats();

}  // namespace tree
}  // namespace allocscope
