// testing_api.cc: the C API of shim/allocscope_testing.h as the preload implements it
// (policy/check.h). The client library defines the same names returning -ENOSYS; under
// the preload these definitions come first in the lookup scope and win.
#include "allocscope_testing.h"
#include "check.h"
#include "compiler.h"

AS_EXPORT int allocscope_check_failures(int (*fn)(void *), void *arg, unsigned flags,
                                        allocscope_check_report *report) {
  return allocscope::check::run(fn, arg, flags, report, nullptr, nullptr);
}

AS_EXPORT int allocscope_check_failures_each(int (*fn)(void *), void *arg, unsigned flags,
                                             allocscope_check_report *report,
                                             allocscope_check_each_fn each, void *each_arg) {
  return allocscope::check::run(fn, arg, flags, report, each, each_arg);
}
