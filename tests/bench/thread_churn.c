/* thread_churn.c: the cost of starting and joining a thread while many others live.

   Usage: thread_churn LIVE CYCLES
   Starts LIVE idle threads (64 KiB stacks, blocked on a condition variable), then times
   CYCLES create+join pairs of a thread that mallocs and frees one small block, and prints
   the microseconds per pair (the median of 5 batches). Run it under each allocator to
   compare: a preload that walks every thread on start or exit shows it here. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t released = PTHREAD_COND_INITIALIZER;
static int done;

static void *idle(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mutex);
  while (!done) pthread_cond_wait(&released, &mutex);
  pthread_mutex_unlock(&mutex);
  return NULL;
}

static void *short_lived(void *arg) {
  free(malloc(64));
  return arg;
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s LIVE CYCLES\n", argv[0]);
    return 2;
  }
  const int live = atoi(argv[1]), cycles = atoi(argv[2]);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 << 10);
  pthread_t *threads = calloc((size_t)live, sizeof(pthread_t));
  for (int i = 0; i < live; ++i)
    if (pthread_create(&threads[i], &attr, idle, NULL) != 0) {
      fprintf(stderr, "thread_churn: only %d threads started\n", i);
      return 1;
    }
  double batch[5];
  for (int b = 0; b < 5; ++b) {
    const double start = now_us();
    for (int i = 0; i < cycles / 5; ++i) {
      pthread_t t;
      if (pthread_create(&t, &attr, short_lived, NULL) != 0) return 1;
      pthread_join(t, NULL);
    }
    batch[b] = (now_us() - start) / (cycles / 5);
  }
  qsort(batch, 5, sizeof(double), by_value);
  printf("%.2f\n", batch[2]);
  pthread_mutex_lock(&mutex);
  done = 1;
  pthread_cond_broadcast(&released);
  pthread_mutex_unlock(&mutex);
  for (int i = 0; i < live; ++i) pthread_join(threads[i], NULL);
  free(threads);
  return 0;
}
