/* create_once.c: a program that fails (exit 3) when a file it creates in its working
   directory already exists, as a database or a lock file would make a second run behave
   differently. Its allocations never change what it does (a failed one is skipped), so
   under `allocscope sweep` every point is "clean" exactly when each run starts in a
   fresh copy of the working directory (sweep_ci_test.py). */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

/* Volatile, so the compiler cannot drop a malloc/free pair. */
static void *volatile keep;

int main(void) {
  for (int i = 0; i < 5; ++i) {
    keep = malloc(100 + (size_t)i); /* NULL is fine: free(NULL) does nothing */
    free(keep);
  }
  const int fd = open("created-by-run", O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) {
    static const char msg[] = "create_once: created-by-run already exists\n";
    (void)!write(2, msg, sizeof(msg) - 1);
    return 3;
  }
  close(fd);
  return 0;
}
