// profile.h: jemalloc's heap profiler, which the preload's jemalloc has (Debian builds it
// with --enable-prof). It can only be switched on when jemalloc starts, through
// MALLOC_CONF (prof:true; allocscope run --profile sets it, with a sampling interval and
// a dump at exit); the profile key then dumps one now (allocscope ctl PID profile:dump).
#pragma once

#include "options.h"

namespace allocscope {
namespace profile {

// Writes a heap profile now (jemalloc's prof.dump, to its prof_prefix.PID.N.m.heap); a
// Refusal saying why not when the profiler is off.
Refusal dump();

}  // namespace profile
}  // namespace allocscope
