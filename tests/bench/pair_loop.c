/* pair_loop.c: N malloc(32)/free pairs and nothing else, for scripts/bench --callgrind,
   which counts the instructions of two runs with different N and divides the difference
   by the difference in N, so that start-up and exit cancel out.

   Usage: pair_loop N
   Prints the file of the object whose malloc served the pairs, so the script can check
   that the preload was still in effect under valgrind. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s N\n", argv[0]);
    return 2;
  }
  const long n = atol(argv[1]);
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
