// allocscope.hpp: RAII guards over the C API of allocscope.h.
//
//   {
//     allocscope::Scope nowait(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
//     ...  // every allocation on this thread fails fast instead of reclaiming or waiting
//   }    // the scope ends: exactly the bits it set are cleared again
//
// Guards are not copyable or movable: a scope belongs to the block that opened it, and
// scopes must close in LIFO order, which blocks give for free.
//
// Failure checks (allocscope_testing.h) take a lambda (C++17):
//
//   allocscope::CheckResult r = allocscope::check_failures([&] {
//     Parser parser;                        // every allocation in here fails in turn
//     return parser.parse(text) ? 0 : -1;
//   });
//   if (r.status == -ENOSYS) return;        // not under the preload (GTEST_SKIP() in a test)
//   assert(r.report.leaks == 0);
//
// (allocscope_gtest.h wraps this in GoogleTest assertions.)
#ifndef ALLOCSCOPE_HPP
#define ALLOCSCOPE_HPP

#include <errno.h>

#include <new>
#include <type_traits>

#include "allocscope.h"
#include "allocscope_testing.h"

namespace allocscope {

// Sets flags on the calling thread for the guard's lifetime (allocscope_save).
class Scope {
 public:
  explicit Scope(allocscope_flags_t flags) : cookie_(allocscope_save(flags)) {}
  ~Scope() { allocscope_restore(cookie_); }
  Scope(const Scope &) = delete;
  Scope &operator=(const Scope &) = delete;

 private:
  allocscope_cookie_t cookie_;
};

// Drops flags from the calling thread's scope for the guard's lifetime (allocscope_clear),
// e.g. around a call into code that may sleep from inside a NOWAIT section.
class ClearScope {
 public:
  explicit ClearScope(allocscope_flags_t flags) : cookie_(allocscope_clear(flags)) {}
  ~ClearScope() { allocscope_restore(cookie_); }
  ClearScope(const ClearScope &) = delete;
  ClearScope &operator=(const ClearScope &) = delete;

 private:
  allocscope_cookie_t cookie_;
};

// A reserve and a RESERVE scope for the guard's lifetime: allocscope_reserve(bytes), then
// allocations on this thread draw from it; at the end the scope closes and the unused
// part is released (allocscope_reserve_release). Check ok() before relying on it:
//
//   allocscope::Reserve reserve(64 << 10);
//   if (!reserve.ok()) return -ENOMEM;  // fail before the section, not inside it
//   ...  // up to 64 KiB of allocations here cannot fail
class Reserve {
 public:
  explicit Reserve(size_t bytes)
      : status_(allocscope_reserve(bytes)), cookie_(allocscope_save(ALLOCSCOPE_RESERVE)) {}
  ~Reserve() {
    allocscope_restore(cookie_);
    allocscope_reserve_release();
  }
  Reserve(const Reserve &) = delete;
  Reserve &operator=(const Reserve &) = delete;

  bool ok() const { return status_ == 0; }
  size_t left() const { return allocscope_reserve_left(); }

 private:
  int status_;
  allocscope_cookie_t cookie_;
};

// What allocscope::check_failures found: status is allocscope_check_failures' return (0,
// -ENOSYS without the preload, ...), report its report.
struct CheckResult {
  int status;
  allocscope_check_report report;
};

namespace check_detail {

// fn's result as the C API wants it, 0 for success: an int (or anything convertible) as it
// is; a bool true as 0 and false as -1; void as 0. An exception must not cross the C API
// (it would skip the check's own bookkeeping), and one that leaves fn is its error:
// std::bad_alloc (operator new failed and nothing caught it) is -ENOMEM, anything else
// -ECANCELED.
template <typename Fn>
int call(Fn &fn) noexcept {
  using Result = decltype(fn());
  try {
    if constexpr (std::is_void_v<Result>) {
      fn();
      return 0;
    } else if constexpr (std::is_same_v<Result, bool>) {
      return fn() ? 0 : -1;
    } else {
      return static_cast<int>(fn());
    }
  } catch (const std::bad_alloc &) {
    return -ENOMEM;
  } catch (...) {
    return -ECANCELED;
  }
}

// The callable as the C API's void * (a const one too: run<> casts back to its type).
template <typename T>
void *erase(T &x) {
  return const_cast<void *>(static_cast<const void *>(&x));
}

template <typename Fn>
int run(void *fn) {
  return call(*static_cast<Fn *>(fn));
}

// each(point) may return void (go on) or bool (true: stop after this point).
template <typename Each>
int each(const allocscope_check_point *point, void *fn) {
  Each &e = *static_cast<Each *>(fn);
  if constexpr (std::is_void_v<decltype(e(*point))>) {
    e(*point);
    return 0;
  } else {
    return e(*point) ? 1 : 0;
  }
}

}  // namespace check_detail

// allocscope_check_failures on a callable: fn() returns int (0 = success), bool (true =
// success) or void (success unless it throws). flags: ALLOCSCOPE_CHECK_*.
template <typename Fn>
CheckResult check_failures(Fn &&fn, unsigned flags = 0) {
  using F = std::remove_reference_t<Fn>;
  CheckResult r{};
  r.status = allocscope_check_failures(&check_detail::run<F>, check_detail::erase(fn), flags,
                                       &r.report);
  return r;
}

// The same, calling each(const allocscope_check_point &) after every point.
template <typename Fn, typename Each>
CheckResult check_failures(Fn &&fn, unsigned flags, Each &&each) {
  using F = std::remove_reference_t<Fn>;
  using E = std::remove_reference_t<Each>;
  CheckResult r{};
  r.status = allocscope_check_failures_each(&check_detail::run<F>, check_detail::erase(fn),
                                            flags, &r.report, &check_detail::each<E>,
                                            check_detail::erase(each));
  return r;
}

}  // namespace allocscope

#endif  // ALLOCSCOPE_HPP
