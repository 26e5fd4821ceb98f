/* dlclose_reuse.c LIB_A LIB_B: calls an allocating function in LIB_A, unloads it, loads
   LIB_B (same code and size, so the loader puts it at the same address) and calls the same
   function there. Prints whether B landed where A was and whether B's allocation failed,
   for callsite_test.py, which checks with fault.record and fault.callsite that B's call
   site is attributed to B. With "only" as LIB_A, just loads and calls LIB_B. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload_check.h"

typedef void *(*site_fn)(size_t);

static void *load(const char *path, site_fn *fn, void **base) {
  void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    fprintf(stderr, "dlclose_reuse: %s\n", dlerror());
    exit(4);
  }
  *fn = (site_fn)dlsym(handle, "site_alloc");
  Dl_info info;
  if (*fn == NULL || dladdr((void *)*fn, &info) == 0) exit(4);
  *base = info.dli_fbase;
  return handle;
}

int main(int argc, char **argv) {
  require_preload();
  if (argc != 3) {
    fprintf(stderr, "usage: dlclose_reuse LIB_A|only LIB_B\n");
    return 2;
  }
  site_fn fn;
  void *base_a = NULL, *base_b;
  if (strcmp(argv[1], "only") != 0) {
    void *a = load(argv[1], &fn, &base_a);
    free(fn(100));
    dlclose(a);
    /* What the loader freed is reused, as the name the call-site cache pointed to was. */
    for (int i = 0; i < 64; ++i) memset(malloc(strlen(argv[1]) + 1), 'Z', strlen(argv[1]));
  }
  load(argv[2], &fn, &base_b);
  void *p = fn(100);
  printf("same_base=%d b_alloc=%s\n", base_a == base_b, p == NULL ? "failed" : "ok");
  free(p);
  return 0;
}
