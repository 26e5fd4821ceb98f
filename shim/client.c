/* client.c: liballocscope_client.so, what programs link to use the C API.
 *
 * Every function is the no-op the API promises without the preload: allocations are
 * plain malloc, scopes and limits do nothing, allocscope_active() is 0. When
 * liballocscope.so is preloaded its definitions of the same names come first in the
 * lookup scope, so these are never called and the policy takes effect. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "allocscope.h"
#include "allocscope_testing.h"

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

/* Nothing is charged or mapped: plain malloc serves RESERVE allocations as any other. */
int allocscope_reserve(size_t bytes) { (void)bytes; return 0; }
size_t allocscope_reserve_release(void) { return 0; }
size_t allocscope_reserve_left(void) { return 0; }

int allocscope_fail_nth(unsigned n) { (void)n; return 0; }
unsigned allocscope_fail_nth_left(void) { return 0; }
int allocscope_fault_mark(int on) { (void)on; return 0; }

/* Failure checks need the preload's fault injection: -ENOSYS, so that a test can skip. */
int allocscope_check_failures_each(int (*fn)(void *), void *arg, unsigned flags,
                                   allocscope_check_report *report,
                                   allocscope_check_each_fn each, void *each_arg) {
  (void)fn;
  (void)arg;
  (void)flags;
  (void)each;
  (void)each_arg;
  if (report != NULL) memset(report, 0, sizeof(*report));
  return -ENOSYS;
}
int allocscope_check_failures(int (*fn)(void *), void *arg, unsigned flags,
                              allocscope_check_report *report) {
  return allocscope_check_failures_each(fn, arg, flags, report, NULL, NULL);
}

int allocscope_active(void) { return 0; }
const char *allocscope_version(void) { return ALLOCSCOPE_VERSION; }

/* Pools keep their contract over plain malloc: min_nr elements held back, a blocking
   allocation waits for one to come back (retrying malloc every 5 s), NOWAIT fails at once.
   Nothing is reported and there are no fork handlers: no budget runs short here. */
struct allocscope_pool {
  pthread_mutex_t mutex; /* guards held and elements[] */
  pthread_cond_t returned;
  size_t elem_size;
  unsigned min_nr;
  unsigned held;
  void *elements[];
};

allocscope_pool *allocscope_pool_create(size_t elem_size, unsigned min_nr) {
  const unsigned nr = min_nr != 0 ? min_nr : 1;
  allocscope_pool *pool;
  if (elem_size == 0) {
    errno = EINVAL;
    return NULL;
  }
  if (elem_size > PTRDIFF_MAX / nr) {
    errno = ENOMEM;
    return NULL;
  }
  pool = malloc(sizeof(*pool) + nr * sizeof(void *));
  if (pool == NULL) return NULL;
  pthread_mutex_init(&pool->mutex, NULL);
  pthread_cond_init(&pool->returned, NULL);
  pool->elem_size = elem_size;
  pool->min_nr = nr;
  for (pool->held = 0; pool->held < nr; ++pool->held) {
    pool->elements[pool->held] = malloc(elem_size);
    if (pool->elements[pool->held] == NULL) {
      allocscope_pool_destroy(pool);
      errno = ENOMEM;
      return NULL;
    }
  }
  return pool;
}

void *allocscope_pool_alloc(allocscope_pool *pool, allocscope_flags_t flags) {
  const int may_wait = (flags & ALLOCSCOPE_NOFAIL) || !(flags & ALLOCSCOPE_NOWAIT);
  void *elem;
  if (pool == NULL) {
    errno = EINVAL;
    return NULL;
  }
  while ((elem = allocscope_alloc(pool->elem_size, flags)) == NULL) {
    pthread_mutex_lock(&pool->mutex);
    if (pool->held == 0 && may_wait) {
      struct timespec deadline;
      clock_gettime(CLOCK_REALTIME, &deadline);
      deadline.tv_sec += 5;
      pthread_cond_timedwait(&pool->returned, &pool->mutex, &deadline);
    }
    if (pool->held > 0) elem = pool->elements[--pool->held];
    pthread_mutex_unlock(&pool->mutex);
    if (elem != NULL) {
      if (flags & ALLOCSCOPE_ZERO) memset(elem, 0, pool->elem_size);
      return elem;
    }
    if (!may_wait) {
      errno = ENOMEM;
      return NULL;
    }
  }
  return elem;
}

void allocscope_pool_free(allocscope_pool *pool, void *elem) {
  int keep = 0;
  if (elem == NULL) return;
  if (pool != NULL) {
    pthread_mutex_lock(&pool->mutex);
    keep = pool->held < pool->min_nr;
    if (keep) {
      pool->elements[pool->held++] = elem;
      pthread_cond_signal(&pool->returned);
    }
    pthread_mutex_unlock(&pool->mutex);
  }
  if (!keep) free(elem);
}

void allocscope_pool_destroy(allocscope_pool *pool) {
  if (pool == NULL) return;
  while (pool->held > 0) free(pool->elements[--pool->held]);
  pthread_cond_destroy(&pool->returned);
  pthread_mutex_destroy(&pool->mutex);
  free(pool);
}
