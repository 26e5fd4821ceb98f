// flags.h: the flag word of shim/allocscope.h as the engine uses it: which bits are
// failure contracts, how flags are named in reports and in ALLOCSCOPE_CONF.
#pragma once

#include <cstddef>

#include "allocscope.h"

namespace allocscope {

using Flags = allocscope_flags_t;

// The four failure contracts; resolution picks exactly one (see resolve.h).
inline constexpr Flags kContractMask = ALLOCSCOPE_NOFAIL | ALLOCSCOPE_NOWAIT |
                                       ALLOCSCOPE_NORETRY | ALLOCSCOPE_RETRY_MAYFAIL;
// All NORECLAIM_CLASS(c) bits.
inline constexpr Flags kReclaimClassMask = 0xffff0000u;

// The process default when nothing else decides: "normal", which behaves as NORETRY but
// is reported under its own name.
inline constexpr Flags kPolicyNormal = 0;

// Writes flags as "nofail|nowarn|noreclaim_class(3)" ("none" for 0). Returns buf.
const char *format_flags(Flags flags, char *buf, size_t len);

// Parses "nofail|kv|noreclaim_class(3)"; "normal" and "none" are 0. The words are the
// flag names in lower case without ALLOCSCOPE_. Returns false on an unknown word.
bool parse_flags(const char *text, size_t len, Flags *out);

}  // namespace allocscope
