/* allocscope.h: the C API of allocscope.
 *
 * allocscope brings the Linux kernel's allocation contexts to user space: a per-thread
 * *scope* of flags (like memalloc_flags_save) applies to every allocation the thread
 * makes, plain malloc in libraries included; *call-site* flags apply to one
 * allocscope_alloc() call (like a gfp_t). Together they decide what an allocation does
 * when memory runs short: retry forever (NOFAIL), fail at once (NOWAIT), try lightly
 * (NORETRY) or hard (RETRY_MAYFAIL).
 *
 * Link with the client library (pkg-config allocscope). Without liballocscope.so preloaded
 * every call here is a harmless no-op (allocations are plain malloc, scopes do nothing,
 * allocscope_active() returns 0), so one binary runs with and without the preload.
 * Memory from every function here is released with free() (or delete).
 *
 * Resolution of scope S and call-site C (plain malloc/new has C = 0):
 *   1. C has NOFAIL: NOFAIL wins. If S has NOWAIT that is a caller bug, reported once per
 *      call site; nofail_in_nowait (wait|fail|abort) says what happens.
 *   2. Else a contract flag in C wins over S: NOWAIT > NORETRY > RETRY_MAYFAIL.
 *   3. Else from S: NOWAIT > NOFAIL > NORETRY > RETRY_MAYFAIL.
 *   4. Else the process default policy (ALLOCSCOPE_CONF policy:, initially normal, which
 *      behaves as NORETRY).
 *   5. Every other flag is the union of S, C and the default policy's.
 *   Sizes above max_size, and overflowing n*size, always fail with ENOMEM. NOFAIL above
 *   nofail_max is demoted to RETRY_MAYFAIL, reported.
 */
#ifndef ALLOCSCOPE_H
#define ALLOCSCOPE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef unsigned allocscope_flags_t;
typedef unsigned long long allocscope_cookie_t;

/* ---- Flags: each usable in a scope and at a call site unless said otherwise. ---- */

/* Never return NULL: reclaim, back off, wait for memory to be freed, retry forever
   (__GFP_NOFAIL). Size caps still fail it; it is never fault-injected. */
#define ALLOCSCOPE_NOFAIL 0x0001u
/* Never sleep, never reclaim, never retry: fail fast in bounded time (GFP_NOWAIT). */
#define ALLOCSCOPE_NOWAIT 0x0002u
/* One light reclaim pass and one retry, then fail (__GFP_NORETRY). */
#define ALLOCSCOPE_NORETRY 0x0004u
/* Reclaim and retry while reclaim makes progress; at most retry_max passes without
   progress, then fail (__GFP_RETRY_MAYFAIL). */
#define ALLOCSCOPE_RETRY_MAYFAIL 0x0008u
/* No failure report (__GFP_NOWARN). Does not change how hard the allocation tries. */
#define ALLOCSCOPE_NOWARN 0x0010u
/* Sizes >= kv_threshold may be served from an mmap region when the arena attempt fails
   (kvmalloc). */
#define ALLOCSCOPE_KV 0x0020u
/* Reclaim callbacks are not run (the PF_MEMALLOC recursion guard). */
#define ALLOCSCOPE_NORECLAIM 0x0040u
/* May use the emergency allowance above the limit (__GFP_MEMALLOC). */
#define ALLOCSCOPE_MEMALLOC 0x0080u
/* May never use the emergency allowance; wins over MEMALLOC (__GFP_NOMEMALLOC). */
#define ALLOCSCOPE_NOMEMALLOC 0x0100u
/* Draw from this thread's preallocated reserve first. */
#define ALLOCSCOPE_RESERVE 0x0200u
/* Exempt from fault injection (a "benign" region). */
#define ALLOCSCOPE_NOFAULT 0x0400u
/* Call-site only: zeroed memory (__GFP_ZERO). Ignored in a scope. */
#define ALLOCSCOPE_ZERO 0x0800u
/* Reclaim callbacks of class c (0-15) are not run: the NOFS/NOIO analogue. A thread that
   holds a subsystem's lock excludes that subsystem's reclaimer. */
#define ALLOCSCOPE_NORECLAIM_CLASS(c) (0x10000u << ((c) & 15u))

/* ---- Scopes: per thread, LIFO, like memalloc_flags_save/restore. ---- */

/* Sets `flags` on the calling thread. The cookie records the bits this call newly set and
   the nesting depth; pass it to allocscope_restore() to undo exactly that. */
allocscope_cookie_t allocscope_save(allocscope_flags_t flags);
/* Drops `flags` from the calling thread's scope (e.g. when a NOWAIT section calls code
   that may sleep); allocscope_restore() puts back exactly the bits it dropped. */
allocscope_cookie_t allocscope_clear(allocscope_flags_t flags);
/* Undoes one save or clear. Restores must be LIFO: an out-of-order restore is reported
   (abort with strict:true) and then applied as well as it can be. */
void allocscope_restore(allocscope_cookie_t cookie);
/* The calling thread's scope flags. */
allocscope_flags_t allocscope_current(void);

/* ---- Allocation with call-site flags. Failure: NULL and errno = ENOMEM. ---- */

void *allocscope_alloc(size_t size, allocscope_flags_t flags);
void *allocscope_calloc(size_t n, size_t size, allocscope_flags_t flags);
/* Like realloc: p = NULL allocates, size 0 frees and returns NULL; on failure p is kept. */
void *allocscope_realloc(void *p, size_t size, allocscope_flags_t flags);
/* align: a power of two (else NULL with EINVAL). */
void *allocscope_aligned_alloc(size_t align, size_t size, allocscope_flags_t flags);
/* allocscope_alloc with KV (kvmalloc): at kv_threshold and above, a light jemalloc
   attempt, then an mmap region under the full policy. Regions are page-granular with a
   guard page after them, return their pages on free, and grow by remapping, not copying. */
void *allocscope_kvmalloc(size_t size, allocscope_flags_t flags);
/* 1 if p (the start of a block) was served by an mmap region, else 0 (is_vmalloc_addr). */
int allocscope_is_region(const void *p);

/* ---- Reclaim: callbacks that free memory when an allocation runs short. ---- */

/* Asked to free about `wanted` bytes; returns the bytes it freed. Runs on the allocating
   thread with NORECLAIM|MEMALLOC added (it never recurses into reclaim and may use the
   emergency allowance), and never concurrently with itself. */
typedef size_t (*allocscope_reclaim_fn)(void *arg, size_t wanted);
/* Registers a reclaimer of class klass (0-15). Returns its id (> 0), or -EINVAL (no fn,
   bad class) or -ENOSPC (64 registered already). */
int allocscope_reclaimer_add(const char *name, unsigned klass, allocscope_reclaim_fn fn,
                             void *arg);
/* Unregisters it, waiting for a running call of it to finish (unless called from it).
   Returns 0 or -ENOENT. */
int allocscope_reclaimer_remove(int id);

/* ---- Reserves: memory set aside before a section that must not fail. ---- */

/* Adds bytes to the calling thread's reserve (radix_tree_preload): charges them to the
   budget and maps and populates their memory now, under the thread's policy (it may
   reclaim, wait, or fail). Then allocations with ALLOCSCOPE_RESERVE (scope or call site)
   on this thread take their usable size from the reserve and cannot fail, neither for the
   budget nor for the system (mmap refused: a lowered RLIMIT_AS), until it is used up.
   Freeing them (free, from any thread) does not refill it. An allocation the reserve
   cannot cover is reported once per reserve (it was sized too small) and follows the
   thread's policy. Returns 0, or ENOMEM: the policy failed, or bytes is more than
   reserves can hold (1 GiB in all, reported). bytes 0: nothing, 0. */
int allocscope_reserve(size_t bytes);
/* Ends the thread's reserve: its unused bytes go back to the budget. Returns them (0 with
   no reserve). Thread exit does the same. Its high-water mark goes to the stats. */
size_t allocscope_reserve_release(void);
/* The calling thread's unused reserve, in bytes. */
size_t allocscope_reserve_left(void);

/* ---- Pools: preallocated elements for allocations that must make progress. ---- */

/* A pool of elements of one size, min_nr of them held back (the kernel's mempool). A
   thread that gets an element and returns it in bounded time always makes progress, however
   short memory is, provided no one holds an element while waiting for a second one from
   the same pool. Elements are ordinary heap blocks, charged to the budget. */
typedef struct allocscope_pool allocscope_pool;
/* Creates a pool and allocates min_nr elements of elem_size bytes at once (min_nr 0 holds
   one), under the calling thread's policy. NULL with errno EINVAL if elem_size is 0, ENOMEM
   if elem_size * min_nr is above max_size (both reported) or the allocations fail (nothing
   is kept). */
allocscope_pool *allocscope_pool_create(size_t elem_size, unsigned min_nr);
/* An element of elem_size bytes, from any thread. First a light allocation (no reclaim, no
   waiting, no report, no emergency allowance), then an element held back by the pool. If
   none is and the policy resolved from flags and the thread's scope is NOWAIT: NULL with
   errno ENOMEM at once, not reported. Otherwise an allocation under that policy (NOFAIL
   tries as RETRY_MAYFAIL here), then a wait for allocscope_pool_free on another thread,
   trying again every 5 s. So it returns NULL only under NOWAIT. ALLOCSCOPE_ZERO zeroes a
   held-back element too. pool NULL: NULL with EINVAL. */
void *allocscope_pool_alloc(allocscope_pool *pool, allocscope_flags_t flags);
/* Returns an element, from any thread: the pool keeps it if it holds fewer than min_nr
   (waking a waiter), else it is freed. elem NULL: nothing. pool NULL: elem is freed. */
void allocscope_pool_free(allocscope_pool *pool, void *elem);
/* Frees the held-back elements and the pool. Elements not returned with allocscope_pool_free
   are reported (their count) and stay valid: from now on they are ordinary blocks, released
   with free(). No thread may use the pool meanwhile, nor wait in allocscope_pool_alloc.
   NULL: nothing. */
void allocscope_pool_destroy(allocscope_pool *pool);

/* ---- Budget, configuration, stats. ---- */

/* Same grammar as ALLOCSCOPE_CONF. Returns 0, or -EINVAL if any pair was bad (the good
   ones still apply; each bad one is reported). */
int allocscope_config(const char *conf);
/* Caps the bytes charged (usable size of live allocations). 0 = no limit. Returns 0. */
int allocscope_limit_set(size_t bytes);
size_t allocscope_limit_get(void);
/* Bytes charged to the budget now: the usable size of every live allocation (jemalloc
   blocks and regions), summed over all threads from jemalloc's per-thread counters. Exact
   when no other thread is allocating at that moment. Without a limit nothing is charged
   and this is jemalloc's count of live bytes. */
size_t allocscope_charged(void);
/* ---- Fault injection (the fault.* keys configure the rest). ---- */

/* This thread's n-th eligible allocation from now fails (like /proc/self/fail-nth);
   0 disarms. NOFAIL and NOFAULT allocations are not eligible. Returns 0. */
int allocscope_fail_nth(unsigned n);
/* What is left of the countdown: 0 once the injected failure has happened (or if none
   was armed). */
unsigned allocscope_fail_nth_left(void);
/* Marks the calling thread for fault.threads:marked (1) or unmarks it (0), like the
   kernel's make-it-fail. Returns the previous mark. */
int allocscope_fault_mark(int on);

/* The stats as one JSON object, snprintf semantics: returns the length it needs. */
int allocscope_stats_json(char *buf, size_t len);
/* 1 under the preload, 0 from the client library alone. */
int allocscope_active(void);
const char *allocscope_version(void);

#ifdef __cplusplus
}
#endif

#endif /* ALLOCSCOPE_H */
