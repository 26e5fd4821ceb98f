// compiler.h: every compiler attribute allocscope uses, in one place.
//
// The branch hints and lock annotations are abseil's header-only macros (absl/base):
// nothing of abseil is linked into the preload (README, "No abseil inside the preload").
#pragma once

#include "absl/base/optimization.h"
#include "absl/base/thread_annotations.h"

// Branch hints for the entry points' fast paths.
#define AS_LIKELY(x) ABSL_PREDICT_TRUE(x)
#define AS_UNLIKELY(x) ABSL_PREDICT_FALSE(x)

// Hidden: references from inside the preload need no GOT indirection. Everything in
// policy/ is hidden anyway (-fvisibility=hidden); this is for `extern` declarations,
// which the compiler would otherwise reach through the GOT.
#define AS_HIDDEN __attribute__((visibility("hidden")))

// An alias that copies the attributes of what it aliases (gcc's copy attribute; clang
// lacks it and needs none: its aliases keep the target's attributes).
#if defined(__has_attribute) && __has_attribute(copy)
#define AS_ALIAS_OF(name) __attribute__((alias(#name), copy(name)))
#else
#define AS_ALIAS_OF(name) __attribute__((alias(#name)))
#endif

// An exported entry point. preload/exports.map decides what the world really sees.
#define AS_EXPORT extern "C" __attribute__((visibility("default")))

// Debug-build checks of the invariants the comments state (mimalloc's
// mi_assert_internal). On in the sanitizer builds (scripts/reliability defines
// ALLOCSCOPE_DEBUG), compiled out otherwise: the preload's release paths pay nothing.
#ifdef ALLOCSCOPE_DEBUG
#include <stdlib.h>
namespace allocscope {
[[noreturn]] void debug_assert_failed(const char *expr, const char *file, int line);
}
#define AS_DEBUG_ASSERT(expr) \
  (ABSL_PREDICT_TRUE(expr) ? void(0) : ::allocscope::debug_assert_failed(#expr, __FILE__, __LINE__))
#else
#define AS_DEBUG_ASSERT(expr) void(0)
#endif
