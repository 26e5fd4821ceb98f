// backend.h: the jemalloc that serves every allocation, as policy/ and preload/ call it.
//
// liballocscope.so links Debian's libjemalloc_pic.a with its public names renamed
// malloc -> je_malloc, mallocx -> je_mallocx, ... (scripts/rename-jemalloc), so this
// header is jemalloc's own <jemalloc/jemalloc.h> read with JEMALLOC_NO_RENAME, which
// declares exactly those je_ names. Nothing here is exported; preload/exports.map
// decides what the world sees.
#pragma once

#define JEMALLOC_NO_RENAME
#include <jemalloc/jemalloc.h>

#if defined(__GNUC__)
#define AS_LIKELY(x) __builtin_expect(!!(x), 1)
#define AS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define AS_LIKELY(x) (x)
#define AS_UNLIKELY(x) (x)
#endif

// Entry points are exported with default visibility; everything else in the object is
// hidden by -fvisibility=hidden and the version script.
#define AS_EXPORT extern "C" __attribute__((visibility("default")))
