/* wrapper_sites.c: one allocation wrapper called from twelve call sites, two of which
 * use its result unchecked. All twelve allocations are the same call site to the
 * allocator (the wrapper's malloc), so `allocscope sweep --mode callsite` sees one point;
 * --mode stack tells the callers apart and must find exactly the two UNCHECKED lines as
 * crashes (sweep_outcome_test.py). Each checked caller exits with its own status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* noinline: the wrapper must stay a frame of its own, as real wrappers are. */
__attribute__((noinline)) static char *wrap_alloc(size_t n) {
  char *p = malloc(n);
  __asm__ volatile("" ::"r"(p) : "memory"); /* no tail call: keep the wrapper's frame */
  return p;
}

#define CHECKED(n, size)                      \
  do {                                        \
    char *p = wrap_alloc(size);               \
    if (p == NULL) return 10 + (n);           \
    memset(p, n, size);                       \
    keep[(n)] = p;                            \
  } while (0)

static char *keep[16];

int main(void) {
  CHECKED(1, 16);
  CHECKED(2, 32);
  CHECKED(3, 48);
  CHECKED(4, 64);
  CHECKED(5, 80);
  char *u1 = wrap_alloc(96); u1[0] = 'a'; keep[6] = u1; /* UNCHECKED */
  CHECKED(7, 112);
  CHECKED(8, 128);
  CHECKED(9, 144);
  char *u2 = wrap_alloc(160); u2[0] = 'b'; keep[10] = u2; /* UNCHECKED */
  CHECKED(11, 176);
  CHECKED(12, 192);
  for (int i = 1; i <= 12; ++i) free(keep[i]);
  return 0;
}
