/* early_thread.c: a library whose constructor starts a thread. The loader runs it before
   the preload's own constructor (neither depends on the other, and this library comes
   later in the lookup order), so the preload's pthread_create and thread state must work
   before the preload has started. The library's thread-specific key must stay its own:
   the preload registering its exit handler under a key it had not yet created would hand
   this key's destructor a value the library never stored. */
#include <pthread.h>
#include <stdlib.h>

static pthread_key_t key;
int early_thread_ran;
int early_thread_foreign_values; /* destructor calls with a value we did not set */

static void destructor(void *value) {
  if (value != &key) ++early_thread_foreign_values;
}

static void *body(void *arg) {
  (void)arg;
  void *blocks[64];
  for (int i = 0; i < 64; ++i) blocks[i] = malloc(1000 + (size_t)i * 100);
  for (int i = 0; i < 64; ++i) free(blocks[i]);
  early_thread_ran = 1;
  return NULL;
}

__attribute__((constructor)) static void start_early_thread(void) {
  pthread_t thread;
  if (pthread_key_create(&key, destructor) != 0) return;
  if (pthread_create(&thread, NULL, body, NULL) == 0) pthread_join(thread, NULL);
}
