/* signal_target.c MODE: a program with its own SIGTERM handling through signal(), for
   live_test.py's signal_api case (issue 18: the preload's exit-signal handler and its
   signal()/sigaction() wrappers).

   MODE "own": installs a handler with signal(); the handler says "handled" and exits 5.
   MODE "restore": installs a handler that says "cleanup", puts SIG_DFL back with signal()
   and raises SIGTERM again (what daemons do), so the process dies of SIGTERM.
   MODE "query": prints whether signal() and sigaction() report SIG_DFL for SIGTERM, SIGINT
   and SIGHUP ("dfl dfl dfl"), as they would without the preload.
   Then it allocates, prints "ready" and waits for the signal. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void own(int sig) {
  (void)sig;
  static const char msg[] = "handled\n";
  write(1, msg, sizeof(msg) - 1);
  _exit(5);
}

static void restore(int sig) {
  static const char msg[] = "cleanup\n";
  write(1, msg, sizeof(msg) - 1);
  signal(sig, SIG_DFL);
  raise(sig);
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  if (strcmp(argv[1], "own") == 0) {
    signal(SIGTERM, own);
  } else if (strcmp(argv[1], "restore") == 0) {
    signal(SIGTERM, restore);
  } else if (strcmp(argv[1], "query") == 0) {
    const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; ++i) {
      struct sigaction old;
      sigaction(sigs[i], NULL, &old);
      void (*prev)(int) = signal(sigs[i], SIG_DFL);  /* sets what it reports: no change */
      printf("%s%s", i ? " " : "",
             old.sa_handler == SIG_DFL && prev == SIG_DFL ? "dfl" : "other");
    }
    printf("\n");
    return 0;
  } else {
    return 2;
  }
  char *volatile keep = malloc(8 << 20);
  memset(keep, 1, 8 << 20);
  printf("ready\n");
  fflush(stdout);
  for (;;) pause();
}
