// allocscope.hpp: RAII guards over the C API of allocscope.h.
//
//   {
//     allocscope::Scope nowait(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
//     ...  // every allocation on this thread fails fast instead of reclaiming or waiting
//   }    // the scope ends: exactly the bits it set are cleared again
//
// Guards are not copyable or movable: a scope belongs to the block that opened it, and
// scopes must close in LIFO order, which blocks give for free.
#ifndef ALLOCSCOPE_HPP
#define ALLOCSCOPE_HPP

#include "allocscope.h"

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

}  // namespace allocscope

#endif  // ALLOCSCOPE_HPP
