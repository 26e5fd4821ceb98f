/* crash_child.c: prints its arguments, one per line, then makes one unchecked
 * allocation. Swept behind `sh -c '( crash_child ... | cat ); echo done'` it is a
 * grandchild of the top process, whose exit status stays 0: only the crash record says
 * it crashed (sweep_outcome_test.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) printf("%s\n", argv[i]);
  fflush(stdout);
  char *copy = malloc(4096); memcpy(copy, "copied", 7); /* UNCHECKED */
  puts(copy);
  free(copy);
  return 0;
}
