// scope.h: per-thread scopes (allocscope_save/clear/restore), as memalloc_flags_save.
//
// A cookie is 64 bits: the flag bits its call changed (low 32), the nesting depth the
// call created (bits 32-62), and whether it was a clear (bit 63). restore() undoes
// exactly those bits; the depth lets it notice a restore out of LIFO order, which is
// reported (fatal with strict:true) and then applied anyway, resetting the depth to the
// cookie's so the remaining restores line up again.
#pragma once

#include "allocscope.h"
#include "flags.h"

namespace allocscope {

allocscope_cookie_t scope_save(Flags flags, const void *callsite);
allocscope_cookie_t scope_clear(Flags flags);
void scope_restore(allocscope_cookie_t cookie);

}  // namespace allocscope
