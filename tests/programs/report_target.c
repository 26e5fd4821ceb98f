/* report_target.c: makes failure reports happen where report_test.py arranges its stderr,
   log files and working directory. Every failing allocation asks for more than the limit
   report_test.py configures (limit:16M, policy:nowait, warn_burst:0), so each one fails and
   is reported.

     report_target fail N              N failures; prints how long the slowest took and
                                       whether fd 2's file status flags stayed the same
     report_target threads T N         T threads, N failures each
     report_target line-then-fail      prints "ready", reads a byte from stdin, fails once;
                                       exits 7 (its own status) if malloc returned NULL
     report_target pending-then-fail   the same with SIGPIPE blocked and already pending:
                                       exits 7 if it is still pending after the report
     report_target daemon DATAFILE     closes 0-2, opens /dev/null and DATAFILE in their
                                       place (as a daemon does), writes two lines of data
                                       around one failure
     report_target chdir-fail DIR      changes directory, then fails once
     report_target wait-then-fail      reads a byte from stdin, then fails once (exit
                                       handlers then write stats and records)

   With REPORT_TARGET_NO_OPENAT2=1 in the environment, openat2 fails with ENOSYS from main
   on (a seccomp filter), as on kernels before 5.6: output files opened after that take
   the per-component openat walk. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "preload_check.h"

/* Through a volatile pointer: the compiler may not pair and drop a malloc and its free. */
static void *(*volatile g_malloc)(size_t) = malloc;

static const size_t kTooBig = (size_t)64 << 20;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* One allocation the limit refuses: 1 if it failed as it should. */
static int fail_once(void) {
  void *p = g_malloc(kTooBig);
  if (p == NULL) return 1;
  free(p);
  return 0;
}

/* openat2 returns ENOSYS from now on; every other system call is allowed. */
static void hide_openat2(void) {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0), /* seccomp_data.nr */
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof(filter) / sizeof(filter[0]), filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    perror("report_target: seccomp");
    exit(5);
  }
}

static void read_go(void) {
  char c;
  while (read(0, &c, 1) < 0 && errno == EINTR) {
  }
}

static long g_per_thread;
static void *thread_fails(void *arg) {
  long *failed = arg;
  for (long i = 0; i < g_per_thread; ++i) *failed += fail_once();
  return NULL;
}

int main(int argc, char **argv) {
  require_preload();
  if (getenv("REPORT_TARGET_NO_OPENAT2") != NULL) hide_openat2();
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "fail") == 0 && argc == 3) {
    const int flags = fcntl(2, F_GETFL);
    const long n = atol(argv[2]);
    long failed = 0;
    double slowest = 0;
    for (long i = 0; i < n; ++i) {
      const double start = now_ms();
      failed += fail_once();
      const double took = now_ms() - start;
      if (took > slowest) slowest = took;
    }
    printf("fail: %ld of %ld failed, slowest %.0f ms, fd 2 flags %s\n", failed, n, slowest,
           fcntl(2, F_GETFL) == flags ? "unchanged" : "changed");
    return failed == n ? 0 : 1;
  }
  if (strcmp(mode, "threads") == 0 && argc == 4) {
    const int threads = atoi(argv[2]);
    g_per_thread = atol(argv[3]);
    pthread_t t[64];
    long failed[64] = {0};
    if (threads < 1 || threads > 64) return 2;
    for (int i = 0; i < threads; ++i) pthread_create(&t[i], NULL, thread_fails, &failed[i]);
    long total = 0;
    for (int i = 0; i < threads; ++i) {
      pthread_join(t[i], NULL);
      total += failed[i];
    }
    printf("threads: %ld failed\n", total);
    return total == threads * g_per_thread ? 0 : 1;
  }
  if (strcmp(mode, "line-then-fail") == 0 || strcmp(mode, "pending-then-fail") == 0) {
    const int pending = strcmp(mode, "pending-then-fail") == 0;
    if (pending) {
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGPIPE);
      sigprocmask(SIG_BLOCK, &set, NULL);
      raise(SIGPIPE);
    }
    printf("ready\n");
    fflush(stdout);
    read_go();
    if (!fail_once()) return 8;
    if (pending) {
      sigset_t now;
      sigpending(&now);
      if (!sigismember(&now, SIGPIPE)) return 9;  /* the program's own SIGPIPE was taken */
    }
    return 7;
  }
  if (strcmp(mode, "daemon") == 0 && argc == 3) {
    close(0);
    close(1);
    close(2);
    if (open("/dev/null", O_RDONLY) != 0) return 4;
    if (open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644) != 1 || dup(1) != 2) return 5;
    static const char one[] = "data 1\n", two[] = "data 2\n";
    if (write(1, one, sizeof(one) - 1) != sizeof(one) - 1) return 6;
    const int failed = fail_once();
    if (write(1, two, sizeof(two) - 1) != sizeof(two) - 1) return 6;
    return failed ? 0 : 1;
  }
  if (strcmp(mode, "chdir-fail") == 0 && argc == 3) {
    if (chdir(argv[2]) != 0) return 4;
    return fail_once() ? 0 : 1;
  }
  if (strcmp(mode, "wait-then-fail") == 0) {
    read_go();
    return fail_once() ? 0 : 1;
  }
  fprintf(stderr, "usage: report_target fail N | threads T N | line-then-fail | "
                  "pending-then-fail | daemon DATAFILE | chdir-fail DIR | wait-then-fail\n");
  return 2;
}
