// foreign.h: when the preload is not the process's malloc.
//
// A program that defines malloc itself, or another allocator earlier in LD_PRELOAD
// (tcmalloc, mimalloc), comes first in the symbol lookup: its malloc serves the process,
// and only the functions it lacks reach the preload. Those must then behave as if
// allocscope were absent (glibc's reallocarray on a tcmalloc pointer, not jemalloc's
// realloc, which would crash on it). detect() finds out at start-up, says so in one line,
// and sets gate::kForeign, which sends every entry point to its engaged half; there each
// one calls what the process would have called without allocscope (`process`).
#pragma once

#include <malloc.h>
#include <stddef.h>
#include <stdio.h>

#include "gate.h"

namespace allocscope {
namespace foreign {

// Called once, from the preload's constructor.
void detect();

inline bool active() { return gate::foreign_allocator(); }

// Each function as the process would resolve it without allocscope: the foreign
// allocator's where it defines one, else the next object's (glibc's).
struct Functions {
  void *(*malloc)(size_t);
  void (*free)(void *);
  void *(*calloc)(size_t, size_t);
  void *(*realloc)(void *, size_t);
  void *(*memalign)(size_t, size_t);
  size_t (*malloc_usable_size)(void *);
  int (*malloc_trim)(size_t);
  struct mallinfo (*mallinfo)();
  struct mallinfo2 (*mallinfo2)();
  void (*malloc_stats)();
  int (*malloc_info)(int, FILE *);
  int (*mallopt)(int, int);
};
extern Functions g_process;

}  // namespace foreign
}  // namespace allocscope
