/* wrong_output.c: prints five items; an item whose buffer cannot be allocated is skipped
 * silently, and the program still exits 0: `wrong-output` (sweep_outcome_test.py). */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  for (int i = 0; i < 5; ++i) {
    char *item = malloc(64 + i); /* FAILS SILENTLY */
    if (item == NULL) continue;
    snprintf(item, 64 + i, "item %d", i);
    puts(item);
    free(item);
  }
  return 0;
}
