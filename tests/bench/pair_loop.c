/* pair_loop.c: N malloc(32)/free pairs and nothing else, for scripts/bench --callgrind,
   which counts the instructions of two runs with different N and divides the difference
   by the difference in N, so that start-up and exit cancel out.

   Usage: pair_loop N [reserve | reclaimer]
   With "reserve" (under liballocscope.so only) the pairs run in a RESERVE scope over a
   reserve big enough for all of them (allocscope_reserve, found with dlsym). With
   "reclaimer" a reclaimer is registered first (allocscope_reclaimer_add): what a program
   with a cache to drop under memory pressure pays on every pair.
   Prints the file of the object whose malloc served the pairs, so the script can check
   that the preload was still in effect under valgrind. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The registered reclaimer: it has nothing to give back. */
static size_t reclaim_nothing(void *arg, size_t wanted) {
  (void)arg, (void)wanted;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: %s N [reserve | reclaimer]\n", argv[0]);
    return 2;
  }
  const long n = atol(argv[1]);
  if (argc == 3 && strcmp(argv[2], "reserve") == 0) {
    int (*reserve)(size_t) = (int (*)(size_t))dlsym(RTLD_DEFAULT, "allocscope_reserve");
    unsigned long long (*save)(unsigned) =
        (unsigned long long (*)(unsigned))dlsym(RTLD_DEFAULT, "allocscope_save");
    if (reserve == NULL || save == NULL || reserve((size_t)n * 32 + 4096) != 0) {
      fprintf(stderr, "pair_loop: no reserve (not under liballocscope.so?)\n");
      return 1;
    }
    save(0x0200u); /* ALLOCSCOPE_RESERVE */
  }
  if (argc == 3 && strcmp(argv[2], "reclaimer") == 0) {
    typedef size_t (*reclaim_fn)(void *, size_t);
    int (*add)(const char *, unsigned, reclaim_fn, void *) =
        (int (*)(const char *, unsigned, reclaim_fn, void *))dlsym(RTLD_DEFAULT,
                                                                  "allocscope_reclaimer_add");
    if (add == NULL || add("pair_loop", 0, reclaim_nothing, NULL) <= 0) {
      fprintf(stderr, "pair_loop: no reclaimer (not under liballocscope.so?)\n");
      return 1;
    }
  }
  for (long i = 0; i < n; ++i) {
    void *p = malloc(32);
    /* The pointer escapes into an empty asm, so the compiler cannot drop the pair. */
    __asm__ volatile("" : : "r"(p) : "memory");
    free(p);
  }

  /* malloc as the dynamic linker resolves it for everyone: the preload's if it won. */
  Dl_info info;
  if (dladdr(dlsym(RTLD_DEFAULT, "malloc"), &info) == 0 || info.dli_fname == NULL) {
    fprintf(stderr, "pair_loop: cannot tell which object defines malloc\n");
    return 1;
  }
  printf("%s\n", info.dli_fname);
  return 0;
}
