/* leak_path.c: when the record buffer cannot be allocated, the error path builds a 64 KiB
 * diagnostic and never frees it, then goes on and exits 0 with the same output; every
 * other path frees what it allocates. The point of the record buffer is `leak`, with at
 * least 64 KiB (sweep_outcome_test.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *g_diagnostic;

__attribute__((noinline)) static void note_failure(void) {
  char *d = malloc(65536); /* LEAKED */
  if (d != NULL) memset(d, 'x', 65536);
  __asm__ volatile("" ::"r"(d) : "memory");
  g_diagnostic = NULL; /* forgotten: the leak */
}

int main(void) {
  char *name = malloc(32);
  if (name == NULL) return 2;
  strcpy(name, "records");
  char *records = malloc(1000); /* RECORDS */
  if (records == NULL) note_failure();
  else free(records);
  puts(name);
  free(name);
  return 0;
}
