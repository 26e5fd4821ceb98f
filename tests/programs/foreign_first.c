/* foreign_first.c: run with another allocator (tcmalloc) before liballocscope.so in
   LD_PRELOAD. tcmalloc serves malloc; the functions it lacks (reallocarray, mallinfo2,
   malloc_trim) reach the preload, which must pass them through to what the process would
   use without it (glibc's, on top of tcmalloc's malloc) instead of handing tcmalloc's
   pointers to jemalloc. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  char *p = malloc(100);
  if (p == NULL) return 1;
  strcpy(p, "kept");
  for (size_t n = 2; n <= 1 << 20; n *= 2) {
    p = reallocarray(p, n, 64);
    if (p == NULL || strcmp(p, "kept") != 0) return 2;
  }
  struct mallinfo2 info = mallinfo2();
  (void)info;
  malloc_trim(0);
  if (malloc_usable_size(p) < (size_t)(1 << 20) * 64) return 3;
  free(p);
  puts("foreign_first: ok");
  return 0;
}
