/* early_thread: links libearly_thread, whose constructor starts a thread before the
   preload's constructor has run (plugin/early_thread.c); then starts a thread of its own
   under a limit. Prints what both saw. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "preload_check.h"

extern int early_thread_ran;
extern int early_thread_foreign_values;

static void *body(void *arg) {
  (void)arg;
  free(malloc(100));
  return NULL;
}

int main(void) {
  require_preload();
  pthread_t thread;
  int late = pthread_create(&thread, NULL, body, NULL) == 0 && pthread_join(thread, NULL) == 0;
  printf("early_thread: ran=%d foreign=%d late=%d\n", early_thread_ran,
         early_thread_foreign_values, late);
  return early_thread_foreign_values == 0 && early_thread_ran && late ? 0 : 1;
}
