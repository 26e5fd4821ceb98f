/* preload_check.h: every test program starts with require_preload(), so a run in which
   liballocscope.so did not take effect fails (exit 3) instead of passing vacuously. The
   comparison run without the preload (expect.py --same-as-unpreloaded) sets
   ALLOCSCOPE_TEST_UNPRELOADED=1 to skip the check. */
#ifndef ALLOCSCOPE_TESTS_PRELOAD_CHECK_H
#define ALLOCSCOPE_TESTS_PRELOAD_CHECK_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static inline void require_preload(void) {
  if (getenv("ALLOCSCOPE_TEST_UNPRELOADED") != NULL) return;
  int (*active)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "allocscope_active");
  if (active == NULL || active() != 1) {
    fprintf(stderr, "allocscope is not active in this process (run it under LD_PRELOAD)\n");
    exit(3);
  }
}

#endif
