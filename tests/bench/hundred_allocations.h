/* hundred_allocations.h: the function the failure-check benchmarks fail: 100 small
   allocations (16 to 128 bytes), each checked, all freed; a failure frees what was made and
   returns -1. check_bench.cc checks it in process (allocscope_check_failures) and
   hundred_allocations.c is the same function as a program for `allocscope sweep --mode nth`,
   so the two figures are for the same 100 points. */
#ifndef HUNDRED_ALLOCATIONS_H
#define HUNDRED_ALLOCATIONS_H

#include <stdlib.h>

enum { kHundred = 100 };

static inline int hundred_allocations(void *arg) {
  void *blocks[kHundred];
  (void)arg;
  for (int i = 0; i < kHundred; ++i) {
    blocks[i] = malloc(16 + 16 * (size_t)(i % 8));
    if (blocks[i] == NULL) {
      while (i-- > 0) free(blocks[i]);
      return -1;
    }
    __asm__ volatile("" : : "r"(blocks[i]) : "memory"); /* the block escapes: not elided */
  }
  for (int i = 0; i < kHundred; ++i) free(blocks[i]);
  return 0;
}

#endif
