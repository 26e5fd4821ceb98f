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
#include "test_support.h"

namespace {

constexpr size_t kMiB = 1 << 20;

// How a child ended: its exit status, or -signal, or -1000 if it was still running at the
// deadline (then it is killed).
int run_child(void (*body)(), int deadline_s = 30) {
  fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(static_cast<unsigned>(deadline_s));  // a hang ends as SIGALRM
    body();
    _exit(0);
  }
  int status;
  if (waitpid(pid, &status, 0) != pid) return -2000;
  if (WIFSIGNALED(status)) return WTERMSIG(status) == SIGALRM ? -1000 : -WTERMSIG(status);
  return WEXITSTATUS(status);
}

std::string stats() {
  static char json[16384];
  allocscope_stats_json(json, sizeof(json));
  return json;
}

std::string engaged() {
  const std::string s = stats();
  const size_t at = s.find("\"engaged\":\"");
  if (at == std::string::npos) return "?";
  const size_t start = at + strlen("\"engaged\":\"");
  return s.substr(start, s.find('"', start) - start);
}

// A number in the stats: `key` inside the object that starts at `section` ("" = anywhere).
unsigned long long stat(const char *key, const char *section = "") {
  const std::string s = stats();
  size_t from = 0;
  if (*section != '\0') from = s.find(std::string("\"") + section + "\":{");
  const size_t at = s.find(std::string("\"") + key + "\":", from);
  if (from == std::string::npos || at == std::string::npos) return ~0ull;
  return strtoull(s.c_str() + at + strlen(key) + 3, nullptr, 10);
}

// Waits (at most 10 s) until some thread is waiting in a NOFAIL allocation.
bool someone_waits() {
  for (int i = 0; i < 1000; ++i) {
    if (engaged().find("waiters") != std::string::npos) return true;
    usleep(10000);
  }
  return false;
}

void check(bool ok, int code) {
  if (!ok) _exit(code);
}

// ---- pthread_cancel of a thread waiting inside an allocation ----

std::atomic<bool> g_returned{false};
void *g_hog;

// A thread at the limit under NOFAIL waits inside the allocation; a cancel that arrives
// meanwhile must stay pending until malloc returned (malloc is not a cancellation point)
// and act at the thread's next cancellation point.
void cancel_while_waiting(void *(*waiter)(void *)) {
  check(allocscope_config("policy:nofail,stall_warn_ms:0,warn:false") == 0, 10);
  check(allocscope_limit_set(allocscope_charged() + 16 * kMiB) == 0, 11);
  g_hog = malloc(12 * kMiB);
  check(g_hog != nullptr, 12);
  memset(g_hog, 1, 12 * kMiB);
  pthread_t thread;
  check(pthread_create(&thread, nullptr, waiter, nullptr) == 0, 13);
  check(someone_waits(), 14);
  check(pthread_cancel(thread) == 0, 15);
  usleep(100000);
  check(!g_returned.load(), 16);  // still waiting: the cancel did not end the allocation
  free(g_hog);                    // now it fits
  void *result;
  check(pthread_join(thread, &result) == 0, 17);
  check(result == PTHREAD_CANCELED, 18);  // cancelled at its next cancellation point
  check(g_returned.load(), 19);           // after the allocation returned
  check(engaged().find("waiters") == std::string::npos, 20);
  void *again = malloc(4 * kMiB);  // frees and allocations still work (no lock left held)
  check(again != nullptr, 21);
  free(again);
}

TEST(Cancellation, ACancelDuringANofailMallocWaitActsAfterMallocReturns) {
  EXPECT_EQ(run_child([] {
              cancel_while_waiting([](void *) -> void * {
                void *p = malloc(8 * kMiB);
                g_returned = p != nullptr;
                free(p);
                pthread_testcancel();
                return nullptr;
              });
            }),
            0);
}

TEST(Cancellation, ACancelDuringACallSiteNofailWaitLeavesNoLockHeld) {
  EXPECT_EQ(run_child([] {
              check(allocscope_config("policy:normal") == 0, 30);
              cancel_while_waiting([](void *) -> void * {
                void *p = allocscope_alloc(8 * kMiB, ALLOCSCOPE_NOFAIL);
                g_returned = p != nullptr;
                free(p);
                pthread_testcancel();
                return nullptr;
              });
            }),
            0);
}

allocscope_pool *g_pool;

// A pool allocation that waits for an element to come back is cancelled; the element
// comes back, the allocation returns, then the cancel acts. The pool still works.
TEST(Cancellation, ACancelDuringAPoolWaitLeavesThePoolUsable) {
  EXPECT_EQ(run_child([] {
              check(allocscope_config("warn:false") == 0, 10);
              g_pool = allocscope_pool_create(1 * kMiB, 1);
              check(g_pool != nullptr, 11);
              // Nothing more fits: this thread takes the held-back element, and the
              // waiter must wait for it to come back.
              check(allocscope_limit_set(allocscope_charged() + 256 * 1024) == 0, 13);
              void *held = allocscope_pool_alloc(g_pool, 0);
              check(held != nullptr, 12);
              pthread_t thread;
              check(pthread_create(&thread, nullptr,
                                   [](void *) -> void * {
                                     void *e = allocscope_pool_alloc(g_pool, ALLOCSCOPE_NOFAIL);
                                     g_returned = e != nullptr;
                                     allocscope_pool_free(g_pool, e);
                                     pthread_testcancel();
                                     return nullptr;
                                   },
                                   nullptr) == 0,
                    14);
              usleep(300000);  // it tried, failed, and waits for the element
              check(pthread_cancel(thread) == 0, 15);
              usleep(100000);
              check(!g_returned.load(), 16);
              allocscope_pool_free(g_pool, held);
              void *result;
              check(pthread_join(thread, &result) == 0, 17);
              check(result == PTHREAD_CANCELED && g_returned.load(), 18);
              void *e = allocscope_pool_alloc(g_pool, ALLOCSCOPE_NOWAIT);
              check(e != nullptr, 19);  // the element is back in the pool
              allocscope_pool_free(g_pool, e);
              allocscope_pool_destroy(g_pool);
            }),
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
  EXPECT_EQ(run_child([] {
              check(allocscope_limit_set(allocscope_charged() + 200 * kMiB) == 0, 10);
              const size_t before = allocscope_charged();
              check(pthread_key_create(&g_key, free) == 0, 11);
              for (int i = 0; i < kThreads; ++i) {
                pthread_t t;
                check(pthread_create(&t, nullptr,
                                     [](void *) -> void * {
                                       void *p = malloc(kMiB);
                                       memset(p, 1, kMiB);
                                       pthread_setspecific(g_key, p);
                                       return nullptr;
                                     },
                                     nullptr) == 0,
                      12);
                check(pthread_join(t, nullptr) == 0, 13);
              }
              const size_t after = allocscope_charged();
              fprintf(stderr, "charged before %zu after %zu\n", before, after);
              check(after < before + kMiB, 14);
              void *big = malloc(150 * kMiB);  // refused when 300 MiB are wrongly charged
              check(big != nullptr, 15);
              free(big);
            }),
            0);
}

// The mirror case: key destructors allocate (kept by the main thread), and must be
// charged: under a 100M limit the threads cannot hold 300 MiB between them.
TEST(ThreadExit, AllocationsInKeyDestructorsAreCharged) {
  EXPECT_EQ(run_child([] {
              check(allocscope_config("warn:false") == 0, 9);
              check(allocscope_limit_set(allocscope_charged() + 100 * kMiB) == 0, 10);
              check(pthread_key_create(&g_key,
                                       [](void *) {
                                         void *p = malloc(kMiB);
                                         if (p == nullptr) return;
                                         memset(p, 1, kMiB);
                                         g_made[g_made_count++] = p;
                                       }) == 0,
                    11);
              for (int i = 0; i < kThreads; ++i) {
                pthread_t t;
                check(pthread_create(&t, nullptr,
                                     [](void *) -> void * {
                                       pthread_setspecific(g_key, &g_key);
                                       return nullptr;
                                     },
                                     nullptr) == 0,
                      12);
                check(pthread_join(t, nullptr) == 0, 13);
              }
              fprintf(stderr, "%d of %d allocations in destructors succeeded\n",
                      g_made_count.load(), kThreads);
              check(g_made_count.load() <= 101, 14);
              for (int i = 0; i < g_made_count.load(); ++i) free(g_made[i]);
            }),
            0);
}

// ---- Sizes no memory can back ----

// With no configuration, a request above what the kernel's overcommit heuristic would
// refuse (RAM + swap) fails as it does under glibc, instead of mapping 64 TiB of
// MAP_NORESERVE address space and running into the OOM killer.
TEST(ImpossibleSizes, FailWithNoConfiguration) {
  if (test_support::read_file("/proc/sys/vm/overcommit_memory").rfind("1", 0) == 0)
    GTEST_SKIP() << "vm.overcommit_memory is 1: the kernel refuses nothing, nor does glibc";
  EXPECT_EQ(run_child([] {
              const size_t huge = size_t{1} << 46;
              errno = 0;
              check(malloc(huge) == nullptr && errno == ENOMEM, 10);
              errno = 0;
              check(calloc(huge / 8, 8) == nullptr && errno == ENOMEM, 11);
              void *small = malloc(16);
              errno = 0;
              check(realloc(small, huge) == nullptr && errno == ENOMEM, 12);
              free(small);
              errno = 0;
              check(aligned_alloc(4096, huge) == nullptr && errno == ENOMEM, 13);
              void *p = &p;
              check(posix_memalign(&p, 64, huge) == ENOMEM, 14);
              try {
                void *q = ::operator new(huge);
                ::operator delete(q);
                _exit(15);
              } catch (const std::bad_alloc &) {
              }
              check(stats().find("\"engaged\":\"\"") != std::string::npos, 16);  // still direct
            }),
            0);
}

TEST(ImpossibleSizes, MaxSizeOverridesTheDefaultCap) {
  if (test_support::read_file("/proc/sys/vm/overcommit_memory").rfind("1", 0) == 0)
    GTEST_SKIP() << "vm.overcommit_memory is 1";
  EXPECT_EQ(run_child([] {
              const size_t huge = size_t{1} << 40;  // 1 TiB: above RAM + swap here
              check(allocscope_config("max_size:2048G") == 0, 10);
              void *p = malloc(huge);  // jemalloc maps it (MAP_NORESERVE) as it would alone
              check(p != nullptr, 11);
              free(p);
            }),
            0);
}

// ---- NOFAIL waits where no free can ever come ----

// A NOFAIL request larger than the whole limit can never fit: it fails at once (a size
// cap, reported), instead of waiting forever.
TEST(NofailDeadEnds, ARequestLargerThanTheWholeLimitFailsAtOnce) {
  EXPECT_EQ(run_child([] {
              check(allocscope_config("policy:nofail,warn:false") == 0, 10);
              check(allocscope_limit_set(allocscope_charged() + 64 * kMiB) == 0, 11);
              errno = 0;
              check(malloc(256 * kMiB) == nullptr && errno == ENOMEM, 12);
              void *p = malloc(kMiB);
              check(p != nullptr, 13);
              free(p);
            },
                      20),
            0);
}

// When every thread the budget knows waits in NOFAIL (here the only one: a forked child
// of a process at its limit), no free can come: the allocation overdraws the limit at once
// (reported) rather than hang.
TEST(NofailDeadEnds, TheOnlyThreadAtTheLimitOverdrawsInsteadOfHanging) {
  EXPECT_EQ(run_child([] {
              check(allocscope_config("policy:nofail,warn:false,stall_warn_ms:0") == 0, 10);
              check(allocscope_limit_set(allocscope_charged() + 32 * kMiB) == 0, 11);
              void *hog = malloc(30 * kMiB);
              check(hog != nullptr, 12);
              void *more = malloc(8 * kMiB);  // nobody else can free: overdraw
              check(more != nullptr, 13);
              check(stat("overdraws", "nofail") >= 1, 14);
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
  EXPECT_EQ(run_child([] {
              check(allocscope_config("policy:nofail,warn:false,stall_warn_ms:0") == 0, 10);
              check(allocscope_limit_set(allocscope_charged() + 32 * kMiB) == 0, 11);
              pthread_t holder;
              check(pthread_create(&holder, nullptr,
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
              check(waitpid(pid, &status, 0) == pid, 13);
              check(WIFEXITED(status) && WEXITSTATUS(status) == 0, 14);
            },
                      30),
            0);
}

// Once NOFAIL overdraws (after nofail_overdraw_ms), later NOFAIL allocations overdraw at
// once until the charge is back under the limit: the wait is paid once, not per
// allocation (90 MiB in 1 MiB steps took 45 s at 1000 ms each).
TEST(NofailDeadEnds, OverdrawingStaysOnUntilTheChargeIsBackUnderTheLimit) {
  EXPECT_EQ(run_child([] {
              check(allocscope_config("policy:nofail,warn:false,stall_warn_ms:0,"
                                      "nofail_overdraw_ms:100") == 0,
                    10);
              check(allocscope_limit_set(allocscope_charged() + 64 * kMiB) == 0, 11);
              // A second thread the budget knows, so the allocation waits before overdrawing.
              pthread_t idle;
              check(pthread_create(&idle, nullptr,
                                   [](void *) -> void * {
                                     pause();
                                     return nullptr;
                                   },
                                   nullptr) == 0,
                    12);
              void *blocks[90];
              for (void *&b : blocks) {
                b = malloc(kMiB);
                check(b != nullptr, 13);
                memset(b, 1, kMiB);
              }
              check(stat("overdraws", "nofail") == 1, 14);  // entered once, stayed on
              check(stat("waits", "nofail") < 40, 15);     // ~100 ms of back-off, once
              for (void *b : blocks) free(b);
            },
                      60),
            0);
}

// ---- Cookies and double frees ----

TEST(Misuse, AGarbageCookieWithAMatchingDepthIsRefused) {
  EXPECT_EQ(run_child([] {
              const allocscope_cookie_t cookie = allocscope_save(ALLOCSCOPE_NOWAIT);
              const allocscope_flags_t before = allocscope_current();
              // The same depth (bits 32 and up of a real cookie), other bits garbage.
              const allocscope_cookie_t garbage = (cookie & ~0xffffffffull) ^ 0x00ff00ff;
              allocscope_restore(garbage ^ (0x5aull << 48));
              check(allocscope_current() == before, 10);  // not applied
              check(stat("misuse") >= 1, 11);
              allocscope_restore(cookie);
              check(allocscope_current() == 0, 12);
            }),
            0);
}

TEST(Misuse, APoolElementFreedTwiceIsHandedOutOnce) {
  EXPECT_EQ(run_child([] {
              check(allocscope_config("warn:false") == 0, 9);
              allocscope_pool *pool = allocscope_pool_create(8 * kMiB, 2);
              check(pool != nullptr, 10);
              // No new element fits (the test's own small allocations do): only the
              // held-back ones are handed out now.
              check(allocscope_limit_set(allocscope_charged() + kMiB) == 0, 11);
              void *x = allocscope_pool_alloc(pool, ALLOCSCOPE_NOWAIT);
              check(x != nullptr, 12);
              allocscope_pool_free(pool, x);
              allocscope_pool_free(pool, x);  // reported, ignored
              check(stat("misuse") >= 1, 13);
              void *a = allocscope_pool_alloc(pool, ALLOCSCOPE_NOWAIT);
              void *b = allocscope_pool_alloc(pool, ALLOCSCOPE_NOWAIT);
              check(a != nullptr && b != nullptr && a != b, 14);
              allocscope_pool_free(pool, a);
              allocscope_pool_free(pool, b);
              check(allocscope_config("limit:0") == 0, 15);
              allocscope_pool_destroy(pool);
            }),
            0);
}

// A region freed twice is named as such (it used to read "not the start of a region").
TEST(Misuse, ARegionFreedTwiceIsReportedAsSuch) {
  char log[] = "/tmp/allocscope-robust-XXXXXX";
  close(mkstemp(log));
  static std::string log_path;
  log_path = log;
  EXPECT_EQ(run_child([] {
              check(allocscope_config(("log_file:" + log_path).c_str()) == 0, 10);
              check(allocscope_config("kv_direct:1M") == 0, 11);
              // volatile: the second free is the point, not a mistake to warn about.
              void *volatile p = allocscope_alloc(4 * kMiB, ALLOCSCOPE_KV);
              check(p != nullptr && allocscope_is_region(p), 12);
              free(p);
              free(p);
            }),
            0);
  EXPECT_NE(test_support::read_file(log_path).find("freed twice"), std::string::npos)
      << test_support::read_file(log_path);
  unlink(log);
}

// ---- Contracts (issue 14) ----

// arena_limit caps every jemalloc allocation, not only kv's arena attempts: plain 1 MiB
// mallocs stop near it (they filled 64 MiB under arena_limit:16M), a plain call-site
// allocation past it fails, and kv allocations still get regions.
TEST(Contracts, ArenaLimitCapsEveryArenaAllocation) {
  EXPECT_EQ(run_child([] {
              check(allocscope_config("warn:false,kv_threshold:64K") == 0, 10);
              const size_t base = allocscope_charged();
              check(allocscope_config("limit:512M") == 0, 11);
              char conf[64];
              snprintf(conf, sizeof(conf), "arena_limit:%zu", base + 16 * kMiB);
              check(allocscope_config(conf) == 0, 12);
              void *blocks[64];
              int n = 0;
              while (n < 64 && (blocks[n] = malloc(kMiB)) != nullptr) ++n;
              fprintf(stderr, "%d plain 1 MiB blocks under arena_limit 16M\n", n);
              check(n >= 12 && n <= 16, 13);
              errno = 0;
              check(allocscope_alloc(8 * kMiB, 0) == nullptr && errno == ENOMEM, 14);
              void *kv = allocscope_kvmalloc(8 * kMiB, 0);  // a region: not the arena's
              check(kv != nullptr && allocscope_is_region(kv), 15);
              free(kv);
              for (int i = 0; i < n; ++i) free(blocks[i]);
              void *again = allocscope_alloc(8 * kMiB, 0);
              check(again != nullptr, 16);
              free(again);
            }),
            0);
}

}  // namespace
