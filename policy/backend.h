// backend.h: the jemalloc that serves every allocation, as policy/ and preload/ call it.
//
// liballocscope.so links Debian's libjemalloc_pic.a with its public names renamed
// malloc -> je_malloc, mallocx -> je_mallocx, ... (scripts/rename-jemalloc), so this
// header is jemalloc's own <jemalloc/jemalloc.h> read with JEMALLOC_NO_RENAME, which
// declares exactly those je_ names. Nothing here is exported; preload/exports.map
// decides what the world sees (compiler.h: AS_EXPORT).
#pragma once

#include "compiler.h"

#define JEMALLOC_NO_RENAME
#include <jemalloc/jemalloc.h>

#include <stddef.h>

// jemalloc's own operator new (new_handler loop, then std::bad_alloc) and sized delete
// (nullptr is a no-op), renamed like the rest: _Znwm -> je__Znwm, ...
extern "C" {
void *je_operator_new(size_t size) __asm__("je__Znwm");
void je_operator_delete_sized(void *p, size_t size) noexcept __asm__("je__ZdlPvm");
void je_operator_delete_array_sized(void *p, size_t size) noexcept __asm__("je__ZdaPvm");
// jemalloc's malloc and free again, typed noexcept (they are) for the gate's call words
// (gate.h): malloc and free are noexcept, and a call through a pointer to a function that
// might throw needs a frame to terminate in, so it could not be their tail call.
void *je_malloc_noexcept(size_t size) noexcept __asm__("je_malloc");
void je_free_noexcept(void *p) noexcept __asm__("je_free");
}
