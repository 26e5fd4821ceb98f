/* spawn_loop.c: process start-up time for scripts/bench. Starts PROGRAM N times, one at
   a time, with posix_spawn (no fork page-table copy to blur the figure) and this
   process's environment, so LD_PRELOAD and ALLOCSCOPE_CONF reach every child. Prints the
   mean wall-clock nanoseconds per start-to-exit.

   Usage: spawn_loop N PROGRAM [ARGS...]
   Exits 1 if any run fails to start or exits unsuccessfully. */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s N PROGRAM [ARGS...]\n", argv[0]);
    return 2;
  }
  const long n = atol(argv[1]);
  char **child_argv = argv + 2;

  const double start = now_ns();
  for (long i = 0; i < n; ++i) {
    pid_t pid;
    int err = posix_spawn(&pid, child_argv[0], NULL, NULL, child_argv, environ);
    if (err != 0) {
      fprintf(stderr, "spawn_loop: %s: %s\n", child_argv[0], strerror(err));
      return 1;
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fprintf(stderr, "spawn_loop: %s did not exit successfully (status 0x%x)\n",
              child_argv[0], status);
      return 1;
    }
  }
  printf("%.0f\n", (now_ns() - start) / n);
  return 0;
}
