// leak_track.h: the bytes a process's failed path leaves live at exit, for the sweep's
// `leak` outcome.
//
// From the first injected failure on (fault.h), in a process with fault.events set, every
// block the engine hands out is remembered with its usable size, and forgotten when it is
// freed or moved by realloc; what is left at exit is what the failed path allocated and
// never freed (fault_events.h writes it into the exit record). Only blocks allocated after the
// injection count: what the program held before it is not the failure's doing.
//
// Frees only reach the engine while gate::kLeakTrack is engaged, and it is engaged only
// here, after an injection in a sweep run: the fast path of every other configuration is
// unchanged. Allocations already go through the engine then (gate::kFaults). The table is
// mapped on first use and fixed (kSlots); past it, tracking stops and the record says the
// count is a lower bound ("overflow").
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace allocscope {
namespace leak_track {

// The first injection, or fault.track_all: starts tracking if fault.events is set
// (idempotent).
void start();

// The engine: a block handed out (p may be nullptr: nothing), a block given back.
void allocated(void *p);
void freed(void *p);

struct Totals {
  uint64_t bytes;   // usable bytes of tracked blocks still live
  uint64_t blocks;
  bool tracking;    // start() ran
  bool overflow;    // the table filled up: a lower bound
};
Totals totals();

// In a fork child: the lock may have been held by a thread that does not exist there.
void after_fork_child();

}  // namespace leak_track
}  // namespace allocscope
