/* client.c: liballocscope_client.so, what programs link to use the C API.
 *
 * Every function is the no-op the API promises without the preload: allocations are
 * plain malloc, scopes and limits do nothing, allocscope_active() is 0. When
 * liballocscope.so is preloaded its definitions of the same names come first in the
 * lookup scope, so these are never called and the policy takes effect. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allocscope.h"

allocscope_cookie_t allocscope_save(allocscope_flags_t flags) { (void)flags; return 0; }
allocscope_cookie_t allocscope_clear(allocscope_flags_t flags) { (void)flags; return 0; }
void allocscope_restore(allocscope_cookie_t cookie) { (void)cookie; }
allocscope_flags_t allocscope_current(void) { return 0; }

void *allocscope_alloc(size_t size, allocscope_flags_t flags) {
  return (flags & ALLOCSCOPE_ZERO) ? calloc(1, size) : malloc(size);
}

void *allocscope_calloc(size_t n, size_t size, allocscope_flags_t flags) {
  (void)flags;
  return calloc(n, size);
}

void *allocscope_realloc(void *p, size_t size, allocscope_flags_t flags) {
  (void)flags;
  return realloc(p, size);
}

void *allocscope_aligned_alloc(size_t align, size_t size, allocscope_flags_t flags) {
  void *p = NULL;
  if (align == 0 || (align & (align - 1)) != 0) {
    errno = EINVAL;
    return NULL;
  }
  if (align < sizeof(void *)) align = sizeof(void *);
  int err = posix_memalign(&p, align, size);
  if (err != 0) {
    errno = err;
    return NULL;
  }
  if (flags & ALLOCSCOPE_ZERO) memset(p, 0, size);
  return p;
}

void *allocscope_kvmalloc(size_t size, allocscope_flags_t flags) {
  return allocscope_alloc(size, flags);
}
int allocscope_is_region(const void *p) { (void)p; return 0; }

/* Without the preload nothing ever reclaims, so a registered callback is never run. */
int allocscope_reclaimer_add(const char *name, unsigned klass, allocscope_reclaim_fn fn,
                             void *arg) {
  static int next_id;
  (void)name;
  (void)arg;
  if (fn == NULL || klass > 15) return -EINVAL;
  return ++next_id;
}
int allocscope_reclaimer_remove(int id) { return id > 0 ? 0 : -ENOENT; }

int allocscope_config(const char *conf) { return conf != NULL ? 0 : -EINVAL; }
int allocscope_limit_set(size_t bytes) { (void)bytes; return 0; }
size_t allocscope_limit_get(void) { return 0; }
size_t allocscope_charged(void) { return 0; }

int allocscope_stats_json(char *buf, size_t len) {
  return snprintf(buf, len, "{\"allocscope\":{\"active\":false}}");
}

int allocscope_fail_nth(unsigned n) { (void)n; return 0; }
unsigned allocscope_fail_nth_left(void) { return 0; }
int allocscope_fault_mark(int on) { (void)on; return 0; }

int allocscope_active(void) { return 0; }
const char *allocscope_version(void) { return ALLOCSCOPE_VERSION; }
