/* hang_target.c: a helper thread sleeps in a loop; when the main thread's allocation
 * fails it waits for a condition nobody signals: a hang, whose report must hold both
 * threads' stacks, taken from the live process (sweep_outcome_test.py). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_never = PTHREAD_COND_INITIALIZER;

__attribute__((noinline)) static void *sleeper(void *arg) {
  for (;;) sleep(1);
  return arg;
}

__attribute__((noinline)) static void wait_forever(void) {
  pthread_mutex_lock(&g_mutex);
  for (;;) pthread_cond_wait(&g_never, &g_mutex); /* HANGS */
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, sleeper, NULL);
  char *buffer = malloc(5000); /* HANG POINT */
  if (buffer == NULL) wait_forever();
  puts("done");
  free(buffer);
  return 0;
}
