/* hundred_allocations.c: hundred_allocations() as a program (exit status 1 when it reports a
   failure), for `allocscope sweep --mode nth`, next to check_bench's in-process figure. */
#include "hundred_allocations.h"

int main(void) { return hundred_allocations(NULL) == 0 ? 0 : 1; }
