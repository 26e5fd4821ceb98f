/* oom_exit.c: the usual die-on-OOM wrappers: xmalloc prints and exits 3, xcalloc aborts.
 * Every point is `oom-exit`: the process ends itself while the wrapper, the failing
 * call's caller, is still running (sweep_outcome_test.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL) {
    fputs("oom_exit: out of memory\n", stderr);
    exit(3); /* DIES */
  }
  return p;
}

__attribute__((noinline)) static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n, size);
  if (p == NULL) abort(); /* ABORTS */
  return p;
}

int main(void) {
  char *a = xmalloc(100);
  char *b = xcalloc(10, 20);
  strcpy(a, "fine");
  printf("%s %d\n", a, b[0]);
  free(a);
  free(b);
  return 0;
}
