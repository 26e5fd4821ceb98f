// preload_robustness_test.cc: what real processes do to the preload that the policy
// tests never did: cancel a thread waiting inside malloc, free and allocate in pthread key
// destructors, ask for sizes no memory can back, wait for frees that can never come,
// restore garbage cookies, free pool elements twice. Each test runs in a child process of
// its own (its configuration must not leak into the next test) and asserts how the child
// ended: its exit status, or the signal that killed it, within a deadline.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <new>
#include <string>

#include <gtest/gtest.h>

#include "allocscope.h"
#include "preload_support.h"

namespace {

using preload_support::engaged;
using preload_support::kMiB;
using preload_support::stat;
using test_support::in_child;

// How long a child may run before it counts as hung (it then ends by SIGALRM).
constexpr unsigned kDeadline = 30;

// Waits (at most 10 s) until some thread is waiting in a NOFAIL allocation.
bool someone_waits() {
  for (int i = 0; i < 1000; ++i) {
    if (engaged().find("waiters") != std::string::npos) return true;
    usleep(10000);
  }
  return false;
}

// ---- pthread_cancel of a thread waiting inside an allocation ----

std::atomic<bool> g_returned{false};
void *g_hog;

// A thread at the limit under NOFAIL waits inside the allocation; a cancel that arrives
// meanwhile must stay pending until malloc returned (malloc is not a cancellation point)
// and act at the thread's next cancellation point.
void cancel_while_waiting(void *(*waiter)(void *)) {
  CHILD_CHECK(allocscope_config("policy:nofail,stall_warn_ms:0,warn:false") == 0, 10);
  CHILD_CHECK(allocscope_limit_set(allocscope_charged() + 16 * kMiB) == 0, 11);
  g_hog = malloc(12 * kMiB);
  CHILD_CHECK(g_hog != nullptr, 12);
  memset(g_hog, 1, 12 * kMiB);
  pthread_t thread;
  CHILD_CHECK(pthread_create(&thread, nullptr, waiter, nullptr) == 0, 13);
  CHILD_CHECK(someone_waits(), 14);
  CHILD_CHECK(pthread_cancel(thread) == 0, 15);
  usleep(100000);
  CHILD_CHECK(!g_returned.load(), 16);  // still waiting: the cancel did not end the allocation
  free(g_hog);                    // now it fits
  void *result;
  CHILD_CHECK(pthread_join(thread, &result) == 0, 17);
  CHILD_CHECK(result == PTHREAD_CANCELED, 18);  // cancelled at its next cancellation point
  CHILD_CHECK(g_returned.load(), 19);           // after the allocation returned
  CHILD_CHECK(engaged().find("waiters") == std::string::npos, 20);
  void *again = malloc(4 * kMiB);  // frees and allocations still work (no lock left held)
  CHILD_CHECK(again != nullptr, 21);
  free(again);
}

TEST(Cancellation, ACancelDuringANofailMallocWaitActsAfterMallocReturns) {
  EXPECT_EQ(in_child([] {
              cancel_while_waiting([](void *) -> void * {
                void *p = malloc(8 * kMiB);
                g_returned = p != nullptr;
                free(p);
                pthread_testcancel();
                return nullptr;
              });
            },
                     kDeadline),
            0);
}

TEST(Cancellation, ACancelDuringACallSiteNofailWaitLeavesNoLockHeld) {
  EXPECT_EQ(in_child([] {
              CHILD_CHECK(allocscope_config("policy:normal") == 0, 30);
              cancel_while_waiting([](void *) -> void * {
                void *p = allocscope_alloc(8 * kMiB, ALLOCSCOPE_NOFAIL);
                g_returned = p != nullptr;
                free(p);
                pthread_testcancel();
                return nullptr;
              });
            },
                     kDeadline),
            0);
}

allocscope_pool *g_pool;

// A pool allocation that waits for an element to come back is cancelled; the element
// comes back, the allocation returns, then the cancel acts. The pool still works.
TEST(Cancellation, ACancelDuringAPoolWaitLeavesThePoolUsable) {
  EXPECT_EQ(in_child([] {
              CHILD_CHECK(allocscope_config("warn:false") == 0, 10);
              g_pool = allocscope_pool_create(1 * kMiB, 1);
              CHILD_CHECK(g_pool != nullptr, 11);
              // Nothing more fits: this thread takes the held-back element, and the
              // waiter must wait for it to come back.
              CHILD_CHECK(allocscope_limit_set(allocscope_charged() + 256 * 1024) == 0, 13);
              void *held = allocscope_pool_alloc(g_pool, 0);
              CHILD_CHECK(held != nullptr, 12);
              pthread_t thread;
              const auto waiter = [](void *) -> void * {
                void *e = allocscope_pool_alloc(g_pool, ALLOCSCOPE_NOFAIL);
                g_returned = e != nullptr;
                allocscope_pool_free(g_pool, e);
                pthread_testcancel();
                return nullptr;
              };
              CHILD_CHECK(pthread_create(&thread, nullptr, waiter, nullptr) == 0, 14);
              usleep(300000);  // it tried, failed, and waits for the element
              CHILD_CHECK(pthread_cancel(thread) == 0, 15);
              usleep(100000);
              CHILD_CHECK(!g_returned.load(), 16);
              allocscope_pool_free(g_pool, held);
              void *result;
              CHILD_CHECK(pthread_join(thread, &result) == 0, 17);
              CHILD_CHECK(result == PTHREAD_CANCELED && g_returned.load(), 18);
              void *e = allocscope_pool_alloc(g_pool, ALLOCSCOPE_NOWAIT);
              CHILD_CHECK(e != nullptr, 19);  // the element is back in the pool
              allocscope_pool_free(g_pool, e);
              allocscope_pool_destroy(g_pool);
            },
                     kDeadline),
            0);
}

// ---- Memory freed and allocated in pthread key destructors ----

pthread_key_t g_key;
constexpr int kThreads = 300;
void *g_made[kThreads];
std::atomic<int> g_made_count{0};

// 300 threads each free 1 MiB in a key destructor (which runs after the preload's own exit
// handler): the budget must see those frees, or it stays charged with nothing live.
TEST(ThreadExit, FreesInKeyDestructorsAreCredited) {
  EXPECT_EQ(in_child([] {
              CHILD_CHECK(allocscope_limit_set(allocscope_charged() + 200 * kMiB) == 0, 10);
              const size_t before = allocscope_charged();
              CHILD_CHECK(pthread_key_create(&g_key, free) == 0, 11);
              for (int i = 0; i < kThreads; ++i) {
                pthread_t t;
                CHILD_CHECK(pthread_create(&t, nullptr,
                                           [](void *) -> void * {
                                             void *p = malloc(kMiB);
                                             memset(p, 1, kMiB);
                                             pthread_setspecific(g_key, p);
                                             return nullptr;
                                           },
                                           nullptr) == 0,
                            12);
                CHILD_CHECK(pthread_join(t, nullptr) == 0, 13);
              }
              const size_t after = allocscope_charged();
              fprintf(stderr, "charged before %zu after %zu\n", before, after);
              CHILD_CHECK(after < before + kMiB, 14);
              void *big = malloc(150 * kMiB);  // refused when 300 MiB are wrongly charged
              CHILD_CHECK(big != nullptr, 15);
              free(big);
            },
                     kDeadline),
            0);
}

// The mirror case: key destructors allocate (kept by the main thread), and must be
// charged: under a 100M limit the threads cannot hold 300 MiB between them.
TEST(ThreadExit, AllocationsInKeyDestructorsAreCharged) {
  EXPECT_EQ(in_child([] {
              CHILD_CHECK(allocscope_config("warn:false") == 0, 9);
              CHILD_CHECK(allocscope_limit_set(allocscope_charged() + 100 * kMiB) == 0, 10);
              CHILD_CHECK(pthread_key_create(&g_key,
                                             [](void *) {
                                               void *p = malloc(kMiB);
                                               if (p == nullptr) return;
                                               memset(p, 1, kMiB);
                                               g_made[g_made_count++] = p;
                                             }) == 0,
                          11);
              for (int i = 0; i < kThreads; ++i) {
                pthread_t t;
                CHILD_CHECK(pthread_create(&t, nullptr,
                                           [](void *) -> void * {
                                             pthread_setspecific(g_key, &g_key);
                                             return nullptr;
                                           },
                                           nullptr) == 0,
                            12);
                CHILD_CHECK(pthread_join(t, nullptr) == 0, 13);
              }
              fprintf(stderr, "%d of %d allocations in destructors succeeded\n",
                      g_made_count.load(), kThreads);
              CHILD_CHECK(g_made_count.load() <= 101, 14);
              for (int i = 0; i < g_made_count.load(); ++i) free(g_made[i]);
            },
                     kDeadline),
            0);
}

// ---- Sizes no memory can back ----

// With no configuration, a request above what the kernel's overcommit heuristic would
// refuse (RAM + swap) fails as it does under glibc, instead of mapping 64 TiB of
// MAP_NORESERVE address space and running into the OOM killer.
TEST(ImpossibleSizes, FailWithNoConfiguration) {
  if (test_support::read_file("/proc/sys/vm/overcommit_memory").rfind("1", 0) == 0)
    GTEST_SKIP() << "vm.overcommit_memory is 1: the kernel refuses nothing, nor does glibc";
  EXPECT_EQ(in_child([] {
              const size_t huge = size_t{1} << 46;
              errno = 0;
              CHILD_CHECK(malloc(huge) == nullptr && errno == ENOMEM, 10);
              errno = 0;
              CHILD_CHECK(calloc(huge / 8, 8) == nullptr && errno == ENOMEM, 11);
              void *small = malloc(16);
              errno = 0;
              CHILD_CHECK(realloc(small, huge) == nullptr && errno == ENOMEM, 12);
              free(small);
              errno = 0;
              CHILD_CHECK(aligned_alloc(4096, huge) == nullptr && errno == ENOMEM, 13);
              void *p = &p;
              CHILD_CHECK(posix_memalign(&p, 64, huge) == ENOMEM, 14);
              try {
                void *q = ::operator new(huge);
                ::operator delete(q);
                _exit(15);
              } catch (const std::bad_alloc &) {
              }
              CHILD_CHECK(engaged().empty(), 16);  // still direct
            },
                     kDeadline),
            0);
}

TEST(ImpossibleSizes, MaxSizeOverridesTheDefaultCap) {
  if (test_support::read_file("/proc/sys/vm/overcommit_memory").rfind("1", 0) == 0)
    GTEST_SKIP() << "vm.overcommit_memory is 1";
  EXPECT_EQ(in_child([] {
              const size_t huge = size_t{1} << 40;  // 1 TiB: above RAM + swap here
              CHILD_CHECK(allocscope_config("max_size:2048G") == 0, 10);
              void *p = malloc(huge);  // jemalloc maps it (MAP_NORESERVE) as it would alone
              CHILD_CHECK(p != nullptr, 11);
              free(p);
            },
                     kDeadline),
            0);
}

// ---- NOFAIL waits where no free can ever come ----

// A NOFAIL request larger than the whole limit can never fit: it fails at once (a size
// cap, reported), instead of waiting forever.
TEST(NofailDeadEnds, ARequestLargerThanTheWholeLimitFailsAtOnce) {
  EXPECT_EQ(in_child([] {
              CHILD_CHECK(allocscope_config("policy:nofail,warn:false") == 0, 10);
              CHILD_CHECK(allocscope_limit_set(allocscope_charged() + 64 * kMiB) == 0, 11);
              errno = 0;
              CHILD_CHECK(malloc(256 * kMiB) == nullptr && errno == ENOMEM, 12);
              void *p = malloc(kMiB);
              CHILD_CHECK(p != nullptr, 13);
              free(p);
            },
                      20),
            0);
}

// When every thread the budget knows waits in NOFAIL (here the only one: a forked child
// of a process at its limit), no free can come: the allocation overdraws the limit at once
// (reported) rather than hang.
TEST(NofailDeadEnds, TheOnlyThreadAtTheLimitOverdrawsInsteadOfHanging) {
  EXPECT_EQ(in_child([] {
              CHILD_CHECK(allocscope_config("policy:nofail,warn:false,stall_warn_ms:0") == 0, 10);
              CHILD_CHECK(allocscope_limit_set(allocscope_charged() + 32 * kMiB) == 0, 11);
              void *hog = malloc(30 * kMiB);
              CHILD_CHECK(hog != nullptr, 12);
              void *more = malloc(8 * kMiB);  // nobody else can free: overdraw
              CHILD_CHECK(more != nullptr, 13);
              CHILD_CHECK(stat("overdraws", "nofail") >= 1, 14);
              free(more);
              free(hog);
            },
                      20),
            0);
}

// The fork child of a process whose other threads hold memory at the limit: their bytes
// stay charged in the child, and nobody there can free them. A NOFAIL allocation in the
// child overdraws instead of waiting forever.
void *g_held_by_other;
TEST(NofailDeadEnds, AForkChildOfAMultithreadedProcessAtTheLimitDoesNotHang) {
  EXPECT_EQ(in_child([] {
              CHILD_CHECK(allocscope_config("policy:nofail,warn:false,stall_warn_ms:0") == 0, 10);
              CHILD_CHECK(allocscope_limit_set(allocscope_charged() + 32 * kMiB) == 0, 11);
              pthread_t holder;
              CHILD_CHECK(pthread_create(&holder, nullptr,
                                         [](void *) -> void * {
                                           g_held_by_other = malloc(28 * kMiB);
                                           memset(g_held_by_other, 1, 28 * kMiB);
                                           pause();
                                           return nullptr;
                                         },
                                         nullptr) == 0,
                          12);
              while (g_held_by_other == nullptr) usleep(1000);
              const pid_t pid = fork();
              if (pid == 0) {
                alarm(10);
                void *p = malloc(8 * kMiB);  // only the vanished thread could free
                _exit(p != nullptr ? 0 : 3);
              }
              int status;
              CHILD_CHECK(waitpid(pid, &status, 0) == pid, 13);
              CHILD_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, 14);
            },
                      30),
            0);
}

// Once NOFAIL overdraws (after nofail_overdraw_ms), later NOFAIL allocations overdraw at
// once until the charge is back under the limit: the wait is paid once, not per
// allocation (90 MiB in 1 MiB steps took 45 s at 1000 ms each).
TEST(NofailDeadEnds, OverdrawingStaysOnUntilTheChargeIsBackUnderTheLimit) {
  EXPECT_EQ(in_child([] {
              CHILD_CHECK(allocscope_config("policy:nofail,warn:false,stall_warn_ms:0,"
                                            "nofail_overdraw_ms:100") == 0,
                          10);
              CHILD_CHECK(allocscope_limit_set(allocscope_charged() + 64 * kMiB) == 0, 11);
              // A second thread the budget knows, so the allocation waits before overdrawing.
              pthread_t idle;
              CHILD_CHECK(pthread_create(&idle, nullptr,
                                         [](void *) -> void * {
                                           pause();
                                           return nullptr;
                                         },
                                         nullptr) == 0,
                          12);
              void *blocks[90];
              for (void *&b : blocks) {
                b = malloc(kMiB);
                CHILD_CHECK(b != nullptr, 13);
                memset(b, 1, kMiB);
              }
              CHILD_CHECK(stat("overdraws", "nofail") == 1, 14);  // entered once, stayed on
              CHILD_CHECK(stat("waits", "nofail") < 40, 15);     // ~100 ms of back-off, once
              for (void *b : blocks) free(b);
            },
                      60),
            0);
}

// ---- Cookies and double frees ----

TEST(Misuse, AGarbageCookieWithAMatchingDepthIsRefused) {
  EXPECT_EQ(in_child([] {
              const allocscope_cookie_t cookie = allocscope_save(ALLOCSCOPE_NOWAIT);
              const allocscope_flags_t before = allocscope_current();
              // The same depth (bits 32 and up of a real cookie), other bits garbage.
              const allocscope_cookie_t garbage = (cookie & ~0xffffffffull) ^ 0x00ff00ff;
              allocscope_restore(garbage ^ (0x5aull << 48));
              CHILD_CHECK(allocscope_current() == before, 10);  // not applied
              CHILD_CHECK(stat("misuse") >= 1, 11);
              allocscope_restore(cookie);
              CHILD_CHECK(allocscope_current() == 0, 12);
            },
                     kDeadline),
            0);
}

TEST(Misuse, APoolElementFreedTwiceIsHandedOutOnce) {
  EXPECT_EQ(in_child([] {
              CHILD_CHECK(allocscope_config("warn:false") == 0, 9);
              allocscope_pool *pool = allocscope_pool_create(8 * kMiB, 2);
              CHILD_CHECK(pool != nullptr, 10);
              // No new element fits (the test's own small allocations do): only the
              // held-back ones are handed out now.
              CHILD_CHECK(allocscope_limit_set(allocscope_charged() + kMiB) == 0, 11);
              void *x = allocscope_pool_alloc(pool, ALLOCSCOPE_NOWAIT);
              CHILD_CHECK(x != nullptr, 12);
              allocscope_pool_free(pool, x);
              allocscope_pool_free(pool, x);  // reported, ignored
              CHILD_CHECK(stat("misuse") >= 1, 13);
              void *a = allocscope_pool_alloc(pool, ALLOCSCOPE_NOWAIT);
              void *b = allocscope_pool_alloc(pool, ALLOCSCOPE_NOWAIT);
              CHILD_CHECK(a != nullptr && b != nullptr && a != b, 14);
              allocscope_pool_free(pool, a);
              allocscope_pool_free(pool, b);
              CHILD_CHECK(allocscope_config("limit:0") == 0, 15);
              allocscope_pool_destroy(pool);
            },
                     kDeadline),
            0);
}

// A region freed twice is named as such (it used to read "not the start of a region").
TEST(Misuse, ARegionFreedTwiceIsReportedAsSuch) {
  test_support::TempFile log;
  static std::string log_path;
  log_path = log.path();
  EXPECT_EQ(in_child([] {
              CHILD_CHECK(allocscope_config(("log_file:" + log_path).c_str()) == 0, 10);
              CHILD_CHECK(allocscope_config("kv_direct:1M") == 0, 11);
              // volatile: the second free is the point, not a mistake to warn about.
              void *volatile p = allocscope_alloc(4 * kMiB, ALLOCSCOPE_KV);
              CHILD_CHECK(p != nullptr && allocscope_is_region(p), 12);
              free(p);
              free(p);
            },
                     kDeadline),
            0);
  EXPECT_NE(log.text().find("freed twice"), std::string::npos) << log.text();
}

// ---- Contracts (issue 14) ----

// arena_limit caps every jemalloc allocation, not only kv's arena attempts: plain 1 MiB
// mallocs stop near it (they filled 64 MiB under arena_limit:16M), a plain call-site
// allocation past it fails, and kv allocations still get regions.
TEST(Contracts, ArenaLimitCapsEveryArenaAllocation) {
  EXPECT_EQ(in_child([] {
              CHILD_CHECK(allocscope_config("warn:false,kv_threshold:64K") == 0, 10);
              const size_t base = allocscope_charged();
              CHILD_CHECK(allocscope_config("limit:512M") == 0, 11);
              char conf[64];
              snprintf(conf, sizeof(conf), "arena_limit:%zu", base + 16 * kMiB);
              CHILD_CHECK(allocscope_config(conf) == 0, 12);
              void *blocks[64];
              int n = 0;
              while (n < 64 && (blocks[n] = malloc(kMiB)) != nullptr) ++n;
              fprintf(stderr, "%d plain 1 MiB blocks under arena_limit 16M\n", n);
              CHILD_CHECK(n >= 12 && n <= 16, 13);
              errno = 0;
              CHILD_CHECK(allocscope_alloc(8 * kMiB, 0) == nullptr && errno == ENOMEM, 14);
              void *kv = allocscope_kvmalloc(8 * kMiB, 0);  // a region: not the arena's
              CHILD_CHECK(kv != nullptr && allocscope_is_region(kv), 15);
              free(kv);
              for (int i = 0; i < n; ++i) free(blocks[i]);
              void *again = allocscope_alloc(8 * kMiB, 0);
              CHILD_CHECK(again != nullptr, 16);
              free(again);
            },
                     kDeadline),
            0);
}

}  // namespace
