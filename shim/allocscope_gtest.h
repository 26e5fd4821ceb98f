// allocscope_gtest.h: GoogleTest assertions over failure checks (allocscope_testing.h).
//
//   #include "allocscope_gtest.h"
//
//   TEST(Parser, FailurePathsFreeWhatTheyAllocated) {
//     ALLOCSCOPE_EXPECT_FAILURES_HANDLED(0, [] {
//       Parser parser;
//       return parser.parse("[1, 2, 3]") ? 0 : -1;
//     });
//   }
//
// Each macro runs allocscope::check_failures(fn, flags) (allocscope.hpp: fn returns int,
// 0 = success, or bool, true = success, or void; an exception leaving it is an error), and
//   - skips the test (GTEST_SKIP) when the program runs without liballocscope.so preloaded;
//   - ALLOCSCOPE_{EXPECT,ASSERT}_FAILURES_HANDLED fails it when a point leaked, or (with
//     ALLOCSCOPE_CHECK_FORK) crashed or called exit();
//   - ALLOCSCOPE_{EXPECT,ASSERT}_FAILURES_REPORTED also fails it when fn returned success
//     although an allocation failed (every failure must reach the caller as an error).
// The message lists each such point: the outcome, the bytes leaked, the failed
// allocation's function and size, and its call stack, one frame a line, innermost first:
//
//   point 5 of 8 (malloc(32) failed): fn returned -1, leaked 160 bytes; call stack:
//     #0 widget_test+0x2f14c  widget_new+0x8c
//     #1 widget_test+0x2f3a0
//     addr2line -f -C -e /build/widget_test 0x2f3a0
//
// What is symbolised: a frame whose address dladdr() can name, i.e. a symbol in a dynamic
// symbol table (functions exported from shared libraries, and from executables linked with
// -rdynamic / meson's export_dynamic), demangled. Static functions, anonymous namespaces
// and executables without -rdynamic stay "module+0xoffset"; the line after the stack is the
// addr2line command that names them from the debug information.
//
// Benign allocations (whose failure fn may absorb legitimately) are exempted with the
// NOFAULT scope: allocscope::Scope benign(ALLOCSCOPE_NOFAULT); see allocscope_testing.h.
#ifndef ALLOCSCOPE_GTEST_H
#define ALLOCSCOPE_GTEST_H

#include <cxxabi.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "allocscope.hpp"

namespace allocscope {
namespace testing {

// A point worth printing, copied out of the callback.
struct FailingPoint {
  allocscope_check_point point;  // its pointers are cleared: they lived during the callback
  std::string function;
  std::string description;  // the outcome and the symbolised call stack
};

// What a check found, with the points that break the expectation of `reported`.
struct CheckOutcome {
  CheckResult result;
  bool reported;  // successes count as failures (the _REPORTED macros)
  std::vector<FailingPoint> failing;
};

namespace detail {

inline std::string demangled(const char *name) {
  int status = 0;
  char *plain = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = status == 0 && plain != nullptr ? plain : name;
  free(plain);
  return out;
}

// The file addr2line needs for a module dladdr found: its path, or the executable's real
// path when the loader knows it only by the name it was started as.
inline std::string module_path(const char *fname) {
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) self[n] = '\0';
  const char *base = fname != nullptr ? strrchr(fname, '/') : nullptr;
  base = base != nullptr ? base + 1 : fname;
  if (n > 0 && (fname == nullptr || fname[0] == '\0' ||
                (base != nullptr && strcmp(base, strrchr(self, '/') + 1) == 0)))
    return self;
  return fname != nullptr ? fname : "?";
}

inline std::string outcome_text(const allocscope_check_point &p) {
  std::ostringstream s;
  if (p.outcome == ALLOCSCOPE_CHECK_SIGNALED) {
    s << "fn died of signal " << p.value << " (" << strsignal(p.value) << ")";
  } else if (p.outcome == ALLOCSCOPE_CHECK_EXITED) {
    s << "fn called exit(" << p.value << ")";
  } else {
    s << "fn returned " << p.value;
    if (p.value == 0 && p.failed > 0) s << " (success although the allocation failed)";
  }
  if (p.leaked_bytes > 0) s << ", leaked " << p.leaked_bytes << " bytes";
  if (p.threads_running > 0) s << ", left " << p.threads_running << " thread(s) running";
  return s.str();
}

// "#i module+0xoffset  symbol+0xNN" per frame, then one addr2line command per module
// for the frames dladdr could not name.
inline std::string stack_text(const allocscope_check_point &p) {
  std::ostringstream s;
  std::map<std::string, std::string> unnamed;  // module path -> offsets
  for (int i = 0; i < p.frames; ++i) {
    s << "    #" << i << ' ' << p.stack_names[i];
    Dl_info info;
    void *frame = p.stack[i];
    if (dladdr(static_cast<char *>(frame) - 1, &info) != 0) {
      if (info.dli_sname != nullptr) {
        s << "  " << demangled(info.dli_sname) << "+0x" << std::hex
          << (static_cast<char *>(frame) - static_cast<char *>(info.dli_saddr)) << std::dec;
      } else {
        const char *plus = strrchr(p.stack_names[i], '+');
        if (plus != nullptr) unnamed[module_path(info.dli_fname)] += std::string(" ") + (plus + 1);
      }
    }
    s << '\n';
  }
  for (const auto &m : unnamed) s << "    addr2line -f -C -e " << m.first << m.second << '\n';
  return s.str();
}

inline bool breaks(const allocscope_check_point &p, bool reported) {
  if (p.outcome != ALLOCSCOPE_CHECK_RETURNED || p.leaked_bytes > 0) return true;
  return reported && p.value == 0 && p.failed > 0;
}

}  // namespace detail

// Runs the check and keeps the points that break its expectation (leak, crash, exit; and
// with `reported`, a success after a failed allocation).
template <typename Fn>
CheckOutcome CheckFailures(Fn &&fn, unsigned flags, bool reported) {
  CheckOutcome out{};
  out.reported = reported;
  out.result = check_failures(fn, flags, [&](const allocscope_check_point &p) {
    if (!detail::breaks(p, reported)) return;
    FailingPoint f;
    f.point = p;
    f.point.stack = nullptr;
    f.point.stack_names = nullptr;
    f.point.function = nullptr;
    f.function = p.function;
    std::ostringstream s;
    s << "point " << p.index;
    if (p.thread != 0) s << " (thread " << p.thread << "'s allocation " << p.nth << ")";
    if (p.failed > 0)
      s << " (" << p.function << "(" << p.size << ") failed" << (p.failed > 1 ? ", and later ones" : "")
        << ")";
    else
      s << " (not reached)";
    s << ": " << detail::outcome_text(p);
    if (p.frames > 0) s << "; call stack:\n" << detail::stack_text(p);
    else s << '\n';
    f.description = s.str();
    out.failing.push_back(f);
  });
  return out;
}

// Passes when no point broke the expectation; the message lists those that did.
inline ::testing::AssertionResult FailuresHandled(const CheckOutcome &o) {
  const allocscope_check_report &r = o.result.report;
  if (o.result.status != 0)
    return ::testing::AssertionFailure()
           << "allocscope_check_failures returned " << o.result.status << " ("
           << strerror(-o.result.status) << ")";
  if (o.failing.empty())
    return ::testing::AssertionSuccess()
           << r.points << " points, " << r.errors << " errors, " << r.successes << " successes";
  ::testing::AssertionResult failure = ::testing::AssertionFailure();
  failure << o.failing.size() << " of " << r.points << " failure points "
          << (o.reported ? "leaked, crashed or hid the failure" : "leaked or crashed");
  if (r.leaks > 0) failure << " (" << r.leaked_bytes << " bytes leaked in all)";
  failure << ":\n";
  for (const FailingPoint &f : o.failing) failure << f.description;
  return failure;
}

}  // namespace testing
}  // namespace allocscope

// (switch: an `else` after the macro in the caller's code cannot bind to its `if`.)
#define ALLOCSCOPE_GTEST_CHECK_(flags, reported, on_failure, ...)                              \
  switch (0)                                                                                  \
  case 0:                                                                                     \
  default:                                                                                    \
    if (const ::allocscope::testing::CheckOutcome allocscope_gtest_outcome_ =                   \
          ::allocscope::testing::CheckFailures(__VA_ARGS__, (flags), (reported));             \
      allocscope_gtest_outcome_.result.status == -ENOSYS)                                     \
    GTEST_SKIP() << "allocscope failure checks need LD_PRELOAD=liballocscope.so";             \
  else                                                                                        \
    on_failure(::allocscope::testing::FailuresHandled(allocscope_gtest_outcome_))

// fn: a callable (usually a lambda) as the last argument; flags: ALLOCSCOPE_CHECK_*.
#define ALLOCSCOPE_EXPECT_FAILURES_HANDLED(flags, ...) \
  ALLOCSCOPE_GTEST_CHECK_(flags, false, EXPECT_TRUE, __VA_ARGS__)
#define ALLOCSCOPE_ASSERT_FAILURES_HANDLED(flags, ...) \
  ALLOCSCOPE_GTEST_CHECK_(flags, false, ASSERT_TRUE, __VA_ARGS__)
#define ALLOCSCOPE_EXPECT_FAILURES_REPORTED(flags, ...) \
  ALLOCSCOPE_GTEST_CHECK_(flags, true, EXPECT_TRUE, __VA_ARGS__)
#define ALLOCSCOPE_ASSERT_FAILURES_REPORTED(flags, ...) \
  ALLOCSCOPE_GTEST_CHECK_(flags, true, ASSERT_TRUE, __VA_ARGS__)

#endif  // ALLOCSCOPE_GTEST_H
