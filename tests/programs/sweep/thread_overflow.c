/* thread_overflow.c: a thread that overflows its stack. Under fault.events its crash line
 * is still written: every thread started through pthread_create gets an alternate signal
 * stack for the crash handler (sweep_outcome_test.py, case thread_overflow). */
#include <pthread.h>
#include <stddef.h>

static volatile int g_deeper = 1;  /* always 1: the recursion is endless, on purpose */

__attribute__((noinline)) static int recurse(int n) {
  volatile char buf[1024];
  buf[0] = (char)n;
  return (g_deeper ? recurse(n + 1) : 0) + buf[0]; /* OVERFLOWS */
}

static void *worker(void *arg) {
  (void)arg;
  recurse(0);
  return NULL;
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  pthread_join(t, NULL);
  return 0;
}
