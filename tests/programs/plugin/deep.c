/* deep.c: a library that dlopen_deepbind.c loads with RTLD_DEEPBIND. It allocates and
   frees for its caller, so pointers cross between it and the main program. */
#include <stdlib.h>
#include <string.h>

char *deep_strdup(const char *s) {
  char *copy = malloc(strlen(s) + 1);
  return copy ? strcpy(copy, s) : NULL;
}

void deep_free(void *p) { free(p); }
