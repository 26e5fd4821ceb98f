/* persistent_target.c: the first allocation's error path allocates its message. A single
 * failure takes the error path, which succeeds (exit 4); with --persistent the message
 * allocation fails too (exit 5) (sweep_outcome_test.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  char *data = malloc(200); /* FIRST */
  if (data == NULL) {
    char *message = strdup("cannot allocate the data buffer");
    if (message == NULL) return 5;
    fprintf(stderr, "%s\n", message);
    free(message);
    return 4;
  }
  free(data);
  return 0;
}
