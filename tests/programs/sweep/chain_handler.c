/* chain_handler.c: installs its own SIGSEGV handler (argv[1]: "sigaction" or "signal")
 * after start-up, then uses an allocation unchecked. Under fault.events the preload's
 * crash handler must stay first: the crash record is written, then this handler runs and
 * ends the process with status 7 (sweep_outcome_test.py, case chain_handler). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void on_segv(int sig) {
  (void)sig;
  static const char text[] = "chain_handler: own handler ran\n";
  write(2, text, sizeof(text) - 1);
  _exit(7);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "signal") == 0) {
    signal(SIGSEGV, on_segv);
  } else {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, NULL);
  }
  char *p = malloc(64); p[0] = 'x'; /* UNCHECKED */
  __asm__ volatile("" ::"r"(p) : "memory"); /* the allocation is not optimised away */
  free(p);
  return 0;
}
