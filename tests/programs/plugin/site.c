/* site.c: one allocation call site, built twice (libsite_a.so, libsite_b.so): the same code
   and size, so that one loaded after the other was unloaded lands at the same address and
   its call site at the same offset (dlclose_reuse.c). */
#include <stdlib.h>
#include <string.h>

void *site_alloc(size_t size) {
  void *p = malloc(size);
  /* Not a tail call: the return address must lie in this library. */
  if (p != NULL) memset(p, 0, 1);
  return p;
}
