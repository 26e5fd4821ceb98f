// preload_entry_points_test.cc: the contract of every exported allocation entry point, checked in
// a process that runs under the preload (meson sets LD_PRELOAD; the first test fails if
// it did not take effect). Expectations are glibc's, except where the preload documents
// a difference, and jemalloc's own for its non-standard API.
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#define JEMALLOC_NO_DEMANGLE
#include <jemalloc/jemalloc.h>

// Deliberate: realloc failures leave the old block valid (GCC 12 cannot know), and
// mallinfo is deprecated but still part of the surface.
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace {

// Bytes this thread has allocated / freed so far, as jemalloc counts them. If an entry
// point did not reach the preload's jemalloc, these do not move.
uint64_t thread_counter(const char *name) {
  uint64_t value = 0;
  size_t len = sizeof(value);
  EXPECT_EQ(mallctl(name, &value, &len, nullptr, 0), 0) << name;
  return value;
}
uint64_t allocated() { return thread_counter("thread.allocated"); }
uint64_t deallocated() { return thread_counter("thread.deallocated"); }

constexpr size_t kTooBig = static_cast<size_t>(PTRDIFF_MAX) + 1;

// The compiler may assume malloc's size is sane and fold a failing call; this keeps the
// absurd sizes opaque.
size_t opaque(size_t n) {
  asm volatile("" : "+r"(n));
  return n;
}

TEST(Preload, IsActive) {
  using active_fn = int (*)();
  auto active = reinterpret_cast<active_fn>(dlsym(RTLD_DEFAULT, "allocscope_active"));
  ASSERT_NE(active, nullptr) << "liballocscope.so is not loaded: run under LD_PRELOAD";
  EXPECT_EQ(active(), 1);
  // malloc itself must land in the preload's jemalloc.
  const uint64_t before = allocated();
  void *p = malloc(1000);
  EXPECT_GE(allocated() - before, 1000u);
  EXPECT_GE(sallocx(p, 0), 1000u);
  free(p);
}

TEST(Malloc, ZeroIsUniqueAndFreeable) {
  void *a = malloc(0), *b = malloc(0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  free(a);
  free(b);
}

TEST(Malloc, AbsurdSizesFailWithEnomem) {
  for (size_t size : {kTooBig, SIZE_MAX, SIZE_MAX - 4096}) {
    errno = 0;
    EXPECT_EQ(malloc(opaque(size)), nullptr) << size;
    EXPECT_EQ(errno, ENOMEM) << size;
  }
}

TEST(Malloc, UsableSize) {
  EXPECT_EQ(malloc_usable_size(nullptr), 0u);
  for (size_t size : {1, 17, 1000, 100000, 3 << 20}) {
    void *p = malloc(size);
    ASSERT_NE(p, nullptr);
    EXPECT_GE(malloc_usable_size(p), size);
    memset(p, 0xab, malloc_usable_size(p));
    free(p);
  }
}

TEST(Free, NullIsANoOp) {
  errno = 77;
  free(nullptr);
  EXPECT_EQ(errno, 77);
}

TEST(Free, PreservesErrno) {
  // Small, large and huge blocks; enough of them to flush the thread cache and to make
  // jemalloc purge, which are the paths that make system calls.
  std::vector<void *> blocks;
  for (int i = 0; i < 4000; ++i) blocks.push_back(malloc(16 + (i % 7) * 100));
  for (size_t size : {size_t{1} << 16, size_t{1} << 20, size_t{64} << 20})
    blocks.push_back(malloc(size));
  for (void *p : blocks) {
    errno = 1234;
    free(p);
    ASSERT_EQ(errno, 1234);
  }
  errno = 1234;
  malloc_trim(0);
  free(malloc(8));
  EXPECT_EQ(errno, 1234);
}

TEST(Calloc, ZeroesMemory) {
  // Dirty a block, free it, and make calloc reuse the same size class.
  for (size_t size : {24, 4000, 1 << 20}) {
    void *dirty = malloc(size);
    memset(dirty, 0xff, size);
    free(dirty);
    auto *p = static_cast<unsigned char *>(calloc(1, size));
    ASSERT_NE(p, nullptr);
    for (size_t i = 0; i < size; ++i) ASSERT_EQ(p[i], 0) << "byte " << i << " of " << size;
    free(p);
  }
}

TEST(Calloc, OverflowFailsWithEnomem) {
  errno = 0;
  EXPECT_EQ(calloc(opaque(SIZE_MAX / 2), 3), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  errno = 0;
  EXPECT_EQ(calloc(opaque(kTooBig), 1), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(Realloc, NullIsMalloc) {
  void *p = realloc(nullptr, 100);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(malloc_usable_size(p), 100u);
  free(p);
  p = realloc(nullptr, 0);  // glibc: like malloc(0), a unique pointer
  EXPECT_NE(p, nullptr);
  free(p);
}

TEST(Realloc, ZeroFreesAndReturnsNull) {
  void *p = malloc(5000);
  const uint64_t before = deallocated();
  errno = 55;
  EXPECT_EQ(realloc(p, 0), nullptr);
  EXPECT_GE(deallocated() - before, 5000u);
  EXPECT_EQ(errno, 55);
}

TEST(Realloc, PreservesContentsAcrossSizeClasses) {
  auto *p = static_cast<unsigned char *>(malloc(10));
  for (int i = 0; i < 10; ++i) p[i] = static_cast<unsigned char>(i);
  size_t size = 10;
  for (size_t next : {100, 5000, 1 << 20, 8 << 20, 64, 10}) {
    p = static_cast<unsigned char *>(realloc(p, next));
    ASSERT_NE(p, nullptr);
    for (size_t i = 0; i < 10; ++i) ASSERT_EQ(p[i], i);
    size = next;
  }
  EXPECT_EQ(size, 10u);
  free(p);
}

TEST(Realloc, FailureKeepsTheOldBlock) {
  auto *p = static_cast<char *>(malloc(64));
  strcpy(p, "still here");
  errno = 0;
  EXPECT_EQ(realloc(p, opaque(kTooBig)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_STREQ(p, "still here");
  free(p);
}

TEST(Reallocarray, ChecksOverflow) {
  auto *p = static_cast<char *>(reallocarray(nullptr, 10, 10));
  ASSERT_NE(p, nullptr);
  strcpy(p, "kept");
  errno = 0;
  EXPECT_EQ(reallocarray(p, opaque(SIZE_MAX / 4), 8), nullptr);
  EXPECT_EQ(errno, ENOMEM);
  EXPECT_STREQ(p, "kept");
  p = static_cast<char *>(reallocarray(p, 1000, 4));
  ASSERT_NE(p, nullptr);
  EXPECT_STREQ(p, "kept");
  EXPECT_GE(malloc_usable_size(p), 4000u);
  free(p);
}

TEST(PosixMemalign, RejectsBadAlignmentsWithEinval) {
  for (size_t align : {0, 1, 2, 4, 3, 24, 100}) {
    void *p = reinterpret_cast<void *>(0x1234);
    EXPECT_EQ(posix_memalign(&p, align, 16), EINVAL) << align;
    EXPECT_EQ(p, reinterpret_cast<void *>(0x1234)) << "output written on error";
  }
}

TEST(PosixMemalign, AlignsAndReportsEnomem) {
  for (size_t align : {8, 16, 64, 4096, 1 << 21}) {
    void *p = nullptr;
    ASSERT_EQ(posix_memalign(&p, align, 100), 0) << align;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u) << align;
    free(p);
  }
  void *p = nullptr;
  EXPECT_EQ(posix_memalign(&p, 64, opaque(kTooBig)), ENOMEM);
}

TEST(AlignedAlloc, PowerOfTwoOnly) {
  for (size_t align : {0, 3, 24, 48}) {
    errno = 0;
    EXPECT_EQ(aligned_alloc(opaque(align), 64), nullptr) << align;
    EXPECT_EQ(errno, EINVAL) << align;
  }
  for (size_t align : {1, 2, 8, 64, 8192}) {
    void *p = aligned_alloc(align, 3 * align);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % align, 0u);
    free(p);
  }
}

TEST(Memalign, RoundsAlignmentUpLikeGlibc) {
  struct Case {
    size_t requested, guaranteed;
  };
  for (Case c : {Case{0, 16}, Case{8, 16}, Case{24, 32}, Case{100, 128}, Case{4096, 4096}}) {
    void *p = memalign(opaque(c.requested), 40);
    ASSERT_NE(p, nullptr) << c.requested;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % c.guaranteed, 0u) << c.requested;
    free(p);
  }
  errno = 0;
  EXPECT_EQ(memalign(opaque(SIZE_MAX / 2 + 2), 16), nullptr);
  EXPECT_EQ(errno, EINVAL);
}

TEST(Valloc, PageAlignedAndPvallocRoundsTheSize) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  void *v = valloc(10);
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v) % page, 0u);
  free(v);
  void *pv = pvalloc(page + 1);
  ASSERT_NE(pv, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(pv) % page, 0u);
  EXPECT_GE(malloc_usable_size(pv), 2 * page);
  free(pv);
  errno = 0;
  EXPECT_EQ(pvalloc(opaque(SIZE_MAX - 10)), nullptr);
  EXPECT_EQ(errno, ENOMEM);
}

TEST(LibcAliases, ReachTheSameHeap) {
  using malloc_fn = void *(*)(size_t);
  using free_fn = void (*)(void *);
  auto libc_malloc = reinterpret_cast<malloc_fn>(dlsym(RTLD_DEFAULT, "__libc_malloc"));
  auto libc_free = reinterpret_cast<free_fn>(dlsym(RTLD_DEFAULT, "__libc_free"));
  ASSERT_NE(libc_malloc, nullptr);
  ASSERT_NE(libc_free, nullptr);
  const uint64_t before = allocated();
  void *p = libc_malloc(3000);
  EXPECT_GE(allocated() - before, 3000u) << "__libc_malloc bypassed the preload";
  free(p);  // a pointer from __libc_malloc is freed by free, and the reverse
  libc_free(malloc(10));
}

TEST(GlibcExtras, MallinfoSeesLiveBytes) {
  const struct mallinfo2 before = mallinfo2();
  void *p = malloc(8 << 20);
  memset(p, 1, 8 << 20);
  const struct mallinfo2 during = mallinfo2();
  EXPECT_GE(during.uordblks, before.uordblks + (8 << 20));
  EXPECT_GE(during.arena, during.uordblks);
  EXPECT_GT(mallinfo().uordblks, 0);
  free(p);
  EXPECT_LT(mallinfo2().uordblks, during.uordblks);
}

TEST(GlibcExtras, MallocTrimReleasesDirtyPages) {
  std::vector<void *> blocks;
  for (int i = 0; i < 64; ++i) {
    blocks.push_back(malloc(1 << 20));
    memset(blocks.back(), 1, 1 << 20);
  }
  for (void *p : blocks) free(p);
  EXPECT_GT(mallinfo2().keepcost, 0u) << "freed pages should be dirty until purged";
  EXPECT_EQ(malloc_trim(0), 1);
  EXPECT_EQ(mallinfo2().keepcost, 0u);
  EXPECT_EQ(malloc_trim(0), 0) << "nothing left to release";
}

TEST(GlibcExtras, MallocStatsAndInfoDescribeOurHeap) {
  char path[] = "/tmp/allocscope-info-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  FILE *f = fdopen(fd, "w+");
  ASSERT_EQ(malloc_info(0, f), 0);
  errno = 0;
  EXPECT_EQ(malloc_info(1, f), -1);
  EXPECT_EQ(errno, EINVAL);
  rewind(f);
  char buf[512] = {};
  fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  unlink(path);
  EXPECT_NE(strstr(buf, "<malloc version=\"allocscope-1\">"), nullptr) << buf;

  // malloc_stats writes to stderr: capture it in a child.
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], STDERR_FILENO);
    malloc_stats();
    _exit(0);
  }
  close(pipefd[1]);
  std::string out;
  char chunk[256];
  for (ssize_t n; (n = read(pipefd[0], chunk, sizeof(chunk))) > 0;) out.append(chunk, n);
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_NE(out.find("in use bytes     ="), std::string::npos) << out;
  EXPECT_EQ(out.find("in use bytes     =          0"), std::string::npos) << out;
}

TEST(GlibcExtras, MalloptAcceptsGlibcParameters) {
  EXPECT_EQ(mallopt(M_ARENA_MAX, 2), 1);
  EXPECT_EQ(mallopt(M_MMAP_THRESHOLD, 1 << 20), 1);
  EXPECT_EQ(mallopt(12345, 1), 0);
}

// ---- operator new / delete ----

int g_handler_calls = 0;
void handler_gives_up_on_third_call() {
  if (++g_handler_calls == 3) std::set_new_handler(nullptr);
}

TEST(OperatorNew, AllFormsAllocateFromThePreload) {
  const uint64_t before = allocated();
  void *p[8];
  p[0] = ::operator new(100);
  p[1] = ::operator new[](100);
  p[2] = ::operator new(100, std::nothrow);
  p[3] = ::operator new[](100, std::nothrow);
  p[4] = ::operator new(100, std::align_val_t{256});
  p[5] = ::operator new[](100, std::align_val_t{256});
  p[6] = ::operator new(100, std::align_val_t{4096}, std::nothrow);
  p[7] = ::operator new[](100, std::align_val_t{4096}, std::nothrow);
  EXPECT_GE(allocated() - before, 800u);
  for (int i = 4; i < 6; ++i) EXPECT_EQ(reinterpret_cast<uintptr_t>(p[i]) % 256, 0u);
  for (int i = 6; i < 8; ++i) EXPECT_EQ(reinterpret_cast<uintptr_t>(p[i]) % 4096, 0u);
  const uint64_t freed = deallocated();
  ::operator delete(p[0]);
  ::operator delete[](p[1], 100);
  ::operator delete(p[2], std::nothrow);
  ::operator delete[](p[3], std::nothrow);
  ::operator delete(p[4], 100, std::align_val_t{256});
  ::operator delete[](p[5], std::align_val_t{256});
  ::operator delete(p[6], std::align_val_t{4096}, std::nothrow);
  ::operator delete[](p[7], 100, std::align_val_t{4096});
  EXPECT_GE(deallocated() - freed, 800u);
  // Null is fine for every delete form, sized ones included.
  ::operator delete(nullptr, 16);
  ::operator delete[](nullptr, 16, std::align_val_t{64});
  ::operator delete(nullptr);
}

TEST(OperatorNew, ZeroSizeIsUnique) {
  void *a = ::operator new(0), *b = ::operator new(0);
  EXPECT_NE(a, b);
  ::operator delete(a);
  ::operator delete(b);
}

TEST(OperatorNew, ThrowsBadAllocWithoutHandler) {
  std::set_new_handler(nullptr);
  EXPECT_THROW((void)::operator new(opaque(kTooBig)), std::bad_alloc);
  EXPECT_THROW((void)::operator new[](opaque(kTooBig), std::align_val_t{64}), std::bad_alloc);
  EXPECT_EQ(::operator new(opaque(kTooBig), std::nothrow), nullptr);
  EXPECT_EQ(::operator new[](opaque(kTooBig), std::align_val_t{64}, std::nothrow), nullptr);
}

TEST(OperatorNew, CallsTheNewHandlerUntilItGivesUp) {
  g_handler_calls = 0;
  std::set_new_handler(handler_gives_up_on_third_call);
  EXPECT_THROW((void)::operator new(opaque(kTooBig)), std::bad_alloc);
  EXPECT_EQ(g_handler_calls, 3);
  g_handler_calls = 0;
  std::set_new_handler(handler_gives_up_on_third_call);
  EXPECT_EQ(::operator new(opaque(kTooBig), std::nothrow), nullptr);
  EXPECT_EQ(g_handler_calls, 3);
}

// A new_handler may throw bad_alloc or a class derived from it; libstdc++'s operator new
// lets it through to the caller. (jemalloc's own operator new would throw a plain
// std::bad_alloc instead, which the catch below would miss.)
struct HandlerGaveUp : std::bad_alloc {};
void handler_throws_its_own() { throw HandlerGaveUp(); }

TEST(OperatorNew, TheNewHandlersOwnExceptionReachesTheCaller) {
  std::set_new_handler(handler_throws_its_own);
  EXPECT_THROW((void)::operator new(opaque(kTooBig)), HandlerGaveUp);
  EXPECT_THROW((void)::operator new[](opaque(kTooBig)), HandlerGaveUp);
  EXPECT_EQ(::operator new(opaque(kTooBig), std::nothrow), nullptr);
  std::set_new_handler(nullptr);
}

// Threads racing to install and remove the handler: whichever call comes last, operator
// new must then know whether a handler is installed. Both threads start together and make
// few calls, so that the last calls of the two often overlap.
TEST(OperatorNew, KnowsTheHandlerAfterThreadsRaceToSetIt) {
  for (int round = 0; round < 2000; ++round) {
    std::atomic<int> ready{0};
    auto toggle = [&ready](bool install_last) {
      ready.fetch_add(1);
      while (ready.load() < 2) std::this_thread::yield();
      for (int i = 0; i < 4; ++i)
        std::set_new_handler(i % 2 == install_last ? handler_throws_its_own : nullptr);
    };
    std::thread a(toggle, true), b(toggle, false);
    a.join();
    b.join();
    if (std::get_new_handler() != nullptr) {
      ASSERT_THROW((void)::operator new(opaque(kTooBig)), HandlerGaveUp) << "round " << round;
    } else {
      ASSERT_THROW((void)::operator new(opaque(kTooBig)), std::bad_alloc) << "round " << round;
    }
  }
  std::set_new_handler(nullptr);
}

// ---- jemalloc's API ----

TEST(JemallocApi, ServedByTheSameHeap) {
  void *p = mallocx(100, MALLOCX_ALIGN(4096) | MALLOCX_ZERO);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 4096, 0u);
  EXPECT_EQ(sallocx(p, 0), nallocx(100, MALLOCX_ALIGN(4096)));
  p = rallocx(p, 10000, 0);
  ASSERT_NE(p, nullptr);
  EXPECT_GE(xallocx(p, 10000, 0, 0), 10000u);
  free(p);  // mallocx memory goes to free, malloc memory to dallocx/sdallocx
  dallocx(malloc(50), 0);
  sdallocx(malloc(50), 50, 0);

  const char *version = nullptr;
  size_t len = sizeof(version);
  ASSERT_EQ(mallctl("version", &version, &len, nullptr, 0), 0);
  EXPECT_EQ(strncmp(version, "5.3.0", 5), 0) << version;

  size_t mib[4], miblen = 4;
  ASSERT_EQ(mallctlnametomib("arenas.narenas", mib, &miblen), 0);
  unsigned narenas = 0;
  len = sizeof(narenas);
  ASSERT_EQ(mallctlbymib(mib, miblen, &narenas, &len, nullptr, 0), 0);
  EXPECT_GT(narenas, 0u);

  std::string json;
  malloc_stats_print(
      [](void *out, const char *s) { static_cast<std::string *>(out)->append(s); }, &json,
      "Jgmdablxe");
  EXPECT_NE(json.find("\"allocated\""), std::string::npos);
}

TEST(Threads, ExitReturnsTheirCaches) {
  // Threads that allocate and free, then exit; their blocks may be freed by others.
  std::vector<void *> handoff(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([t, &handoff] {
      std::vector<void *> mine;
      for (int i = 0; i < 20000; ++i) mine.push_back(malloc(8 + (i * 31 + t) % 2000));
      for (void *p : mine) free(p);
      handoff[t] = malloc(1000);
    });
  for (auto &th : threads) th.join();
  for (void *p : handoff) free(p);
}

}  // namespace
