/* static_hello.c: a statically linked program for test_launcher.py, which checks that
   `allocscope run` warns that LD_PRELOAD cannot reach it. It allocates so that a
   preload, were it somehow active, would have something to count. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  char *p = malloc(64);
  if (p == NULL) return 1;
  strcpy(p, "static hello");
  puts(p);
  free(p);
  return 0;
}
