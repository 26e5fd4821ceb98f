/* own_malloc.c: a program with its own malloc wins over any preload. allocscope cannot
   serve it and must say so (expect.py checks the "inactive" line on stderr). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static char arena[1 << 20];
static size_t used;

void *malloc(size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (used + n > sizeof(arena)) return NULL;
  used += n;
  return arena + used - n;
}
void free(void *p) { (void)p; }
void *calloc(size_t n, size_t size) {
  void *p = malloc(n * size);
  return p ? memset(p, 0, n * size) : NULL;
}
void *realloc(void *p, size_t n) {
  void *q = malloc(n);
  if (q && p) memcpy(q, p, n); /* the bump arena has room to over-read */
  return q;
}

int main(void) {
  puts("own_malloc: ran");
  return 0;
}
