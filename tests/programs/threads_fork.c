/* threads_fork.c: fork from a multithreaded parent while its threads allocate and free.
   Each child allocates and frees freely (also from a new thread of its own) and exits 0;
   a child that deadlocks on an allocator lock held by a thread that does not exist in the
   child is killed by the alarm and fails the run. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload_check.h"

enum { kThreads = 4, kForks = 40 };
static atomic_int stop;

static uint32_t next_random(uint32_t *state) {
  *state = *state * 1103515245u + 12345u;
  return *state >> 8;
}

static void churn(uint32_t seed, int rounds) {
  void *slots[256] = {0};
  for (int i = 0; i < rounds; ++i) {
    uint32_t r = next_random(&seed);
    int slot = r % 256;
    free(slots[slot]);
    size_t size = (r >> 8) % 16 == 0 ? (r % (1 << 18)) : (r % 512);
    slots[slot] = malloc(size + 1);
    if (slots[slot] == NULL) abort();
    memset(slots[slot], (int)r, size + 1);
    if (i % 97 == 0) slots[slot] = realloc(slots[slot], size + 4096);
  }
  for (int i = 0; i < 256; ++i) free(slots[i]);
}

static void *parent_worker(void *arg) {
  uint32_t seed = (uint32_t)(uintptr_t)arg;
  while (!atomic_load(&stop)) churn(seed++, 1000);
  return NULL;
}

static void *child_worker(void *arg) {
  churn((uint32_t)(uintptr_t)arg, 5000);
  return NULL;
}

int main(void) {
  require_preload();
  pthread_t threads[kThreads];
  for (int i = 0; i < kThreads; ++i)
    pthread_create(&threads[i], NULL, parent_worker, (void *)(uintptr_t)(i + 1));
  int failures = 0;
  for (int f = 0; f < kForks; ++f) {
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
      alarm(20);
      pthread_t t;
      if (pthread_create(&t, NULL, child_worker, (void *)(uintptr_t)(100 + f)) != 0) _exit(4);
      churn(1000 + f, 5000);
      pthread_join(t, NULL);
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "child %d: %s %d\n", f, WIFSIGNALED(status) ? "signal" : "exit",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
      ++failures;
    }
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < kThreads; ++i) pthread_join(threads[i], NULL);
  printf("threads_fork: %d forks, %d failures\n", kForks, failures);
  return failures == 0 ? 0 : 1;
}
