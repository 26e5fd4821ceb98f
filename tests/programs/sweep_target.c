/* sweep_target.c: the program `allocscope sweep` is tested on (tests/programs/sweep_test.py).

   main() makes the same allocations in the same order on every run, each a direct call
   into the allocator from its own source line, and checks every result but one: a
   failure at check N prints one line and exits with status 10+N ("handled"). The one
   unchecked allocation (marked UNCHECKED below; the test finds the line by that mark)
   writes through its result, so a failure there is a SIGSEGV ("crash"). The strdup at
   the end allocates inside libc, so its call site is libc's, not this file's.

   Every block escapes into the volatile array `keep`, so the compiler can neither elide
   an allocation nor merge two of them, and nothing here uses stdio buffers (which
   would allocate inside libc): output goes through write(). */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preload_check.h"

static void *volatile keep[16];

/* Prints which allocation failed and returns its exit status. */
static int failed(int check, const char *what) {
  fprintf(stderr, "sweep_target: %s failed (check %d)\n", what, check);
  return 10 + check;
}

int main(void) {
  require_preload();
  void *p;
  char *unchecked;

  p = malloc(24);
  if (p == NULL) return failed(1, "malloc");
  keep[0] = p;
  p = calloc(4, 16);
  if (p == NULL) return failed(2, "calloc");
  keep[1] = p;
  p = realloc(keep[0], 200);
  if (p == NULL) return failed(3, "realloc");
  keep[0] = p;
  p = reallocarray(NULL, 8, 32);
  if (p == NULL) return failed(4, "reallocarray");
  keep[2] = p;
  if (posix_memalign(&p, 64, 100) != 0) return failed(5, "posix_memalign");
  keep[3] = p;
  p = aligned_alloc(32, 64);
  if (p == NULL) return failed(6, "aligned_alloc");
  keep[4] = p;
  unchecked = malloc(1000); /* UNCHECKED */
  *(volatile char *)unchecked = 'x';
  keep[5] = unchecked;
  p = memalign(128, 40);
  if (p == NULL) return failed(7, "memalign");
  keep[6] = p;
  p = valloc(100);
  if (p == NULL) return failed(8, "valloc");
  keep[7] = p;
  p = pvalloc(100);
  if (p == NULL) return failed(9, "pvalloc");
  keep[8] = p;
  p = calloc(100, 3);
  if (p == NULL) return failed(10, "calloc");
  keep[9] = p;
  p = malloc(1 << 20);
  if (p == NULL) return failed(11, "malloc");
  keep[10] = p;
  p = realloc(NULL, 77);
  if (p == NULL) return failed(12, "realloc");
  keep[11] = p;
  p = strdup("allocated inside libc");
  if (p == NULL) return failed(13, "strdup");
  keep[12] = p;

  for (int i = 0; i < 16; ++i) free(keep[i]);
  static const char done[] = "sweep_target: ok\n";
  return write(1, done, sizeof(done) - 1) == (ssize_t)(sizeof(done) - 1) ? 0 : 1;
}
