/* dlopen_runpath.c: dlopen by bare name must search the *caller's* RUNPATH. glibc finds
   the caller from dlopen's return address, so the preload's dlopen wrapper has to
   tail-call the real one; a wrapper with its own frame would make liballocscope.so the
   caller, and libplugin.so (found only through this program's RUNPATH) would not load. */
#include <dlfcn.h>
#include <stdio.h>

#include "preload_check.h"

int main(void) {
  require_preload();
  void *lib = dlopen("libplugin.so", RTLD_NOW);
  if (lib == NULL) { fprintf(stderr, "%s\n", dlerror()); return 1; }
  int (*answer)(void) = (int (*)(void))dlsym(lib, "plugin_answer");
  printf("dlopen_runpath: %d\n", answer());
  return answer() == 42 ? 0 : 1;
}
