/* dlopen_deepbind.c: a library opened with RTLD_DEEPBIND binds malloc to glibc's, not to
   the preload's; its pointers would then reach jemalloc's free. The preload drops the flag
   (with a warning), so pointers cross freely in both directions. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload_check.h"

int main(int argc, char **argv) {
  require_preload();
  if (argc != 2) return 2;
  void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (lib == NULL) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  char *(*deep_strdup)(const char *) = (char *(*)(const char *))dlsym(lib, "deep_strdup");
  void (*deep_free)(void *) = (void (*)(void *))dlsym(lib, "deep_free");
  size_t (*sallocx)(const void *, int) =
      (size_t (*)(const void *, int))dlsym(RTLD_DEFAULT, "sallocx");
  for (int i = 0; i < 1000; ++i) {
    char *from_lib = deep_strdup("allocated inside the deep-bound library");
    if (sallocx(from_lib, 0) < 40) return 1; /* it is a jemalloc block of ours */
    free(from_lib);                          /* freed by the main program */
    deep_free(strdup("allocated by the main program"));
  }
  puts("dlopen_deepbind: ok");
  return 0;
}
