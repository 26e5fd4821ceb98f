/* shim_client.c: a program built against the client library (allocscope.h). It runs the
   same with and without the preload; only under the preload does the policy act: a
   NOWAIT allocation past a limit it sets fails, its scope is visible, and a RESERVE
   allocation draws on the reserve it made.
   Prints one line: "active=A scope=S over_limit=ok|failed reserve=R drawn=yes|no". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allocscope.h"

int main(void) {
  const size_t mib = 1 << 20;
  allocscope_limit_set(allocscope_charged() + 4 * mib);
  allocscope_cookie_t cookie = allocscope_save(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  unsigned scope = allocscope_current();
  void *big = allocscope_alloc(16 * mib, 0);
  allocscope_restore(cookie);
  allocscope_limit_set(0);

  const int reserved = allocscope_reserve(mib);
  cookie = allocscope_save(ALLOCSCOPE_RESERVE);
  void *volatile from_reserve = malloc(mib / 2);  /* volatile: the compiler keeps the pair */
  allocscope_restore(cookie);
  const size_t left = allocscope_reserve_left();
  const size_t released = allocscope_reserve_release();

  printf("active=%d scope=%s over_limit=%s reserve=%d drawn=%s\n", allocscope_active(),
         scope == (ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN) ? "nowait|nowarn" : "none",
         big != NULL ? "ok" : "failed", reserved,
         left > 0 && left < mib / 2 && released == left ? "yes" : "no");
  free(from_reserve);
  if (big != NULL) memset(big, 0, 16 * mib);
  free(big);
  char json[256];
  return allocscope_stats_json(json, sizeof(json)) > 0 ? 0 : 1;
}
