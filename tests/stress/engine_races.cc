// engine_races.cc: two narrow races in the engine, driven hard enough for ThreadSanitizer
// to see them in every run (engine_stress meets them only now and then). Outside TSan
// this is a smoke test: it checks only that nothing crashes or deadlocks.
//
//   1. set_report_file() while report() runs on another thread. report.cc keeps the log
//      path in two buffers so that a change never overwrites the one a concurrent report
//      may be reading; two changes during one report do (the second strcpy writes into the
//      buffer the report is expanding), and the report may then open a path nobody set.
//   2. reclaim::add() reusing a slot while reclaim::run_pass() on another thread looks at
//      it: run_pass reads the slot's class (to honour NORECLAIM_CLASS) before it claims the
//      slot, while add() writes the class of a new registration there.
//   3. gate::change() on two threads at once: each publishes the gate (its bounds and
//      call words) for the bits it saw, and a store computed from bits another thread
//      has since changed must not be the last. Checked everywhere: after every round the
//      gate must match the bits.
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include "backend.h"
#include "engine.h"
#include "gate.h"
#include "lifecycle.h"
#include "reclaim.h"
#include "report.h"

namespace as = allocscope;

namespace {

std::atomic<bool> g_stop{false};
std::string g_dir;

void *reporter(void *) {
  while (!g_stop.load()) as::report("engine_races: a report");
  return nullptr;
}

size_t reclaim_nothing(void *, size_t) { return 0; }

void *passes(void *) {
  while (!g_stop.load()) as::reclaim::run_pass(1 << 20, ALLOCSCOPE_NORECLAIM_CLASS(3), false);
  return nullptr;
}

void *toggle_faults(void *) {
  constexpr uint32_t kBit = as::gate::kFaults;
  for (bool on = true; !g_stop.load(); on = !on) as::gate::change(on ? kBit : 0, on ? 0 : kBit);
  return nullptr;
}

void run(void *(*other)(void *), void (*mine)(int)) {
  g_stop.store(false);
  pthread_t t;
  if (pthread_create(&t, nullptr, other, nullptr) != 0) abort();
  for (int i = 0; i < 20000; ++i) mine(i);
  g_stop.store(true);
  pthread_join(t, nullptr);
}

}  // namespace

int main() {
  je_free(je_malloc(1));
  as::lifecycle::start();
  char tmpl[] = "/tmp/allocscope-races-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  g_dir = tmpl;
  // Two paths that differ in one character, in a private directory: a report that reads
  // a path while it is overwritten can only make another name in that directory.
  static std::string a, b;
  a = g_dir + "/a.log";
  b = g_dir + "/b.log";

  run(reporter, [](int i) { as::set_report_file(i % 2 ? a.c_str() : b.c_str()); });
  as::set_report_file("");
  printf("engine_races: report path changes during reports: done\n");

  run(passes, [](int i) {
    const int id = as::reclaim::add("races", static_cast<unsigned>(i % 16), reclaim_nothing, nullptr);
    if (id <= 0 || as::reclaim::remove(id) != 0) abort();
  });
  printf("engine_races: reclaimer slots reused during passes: done\n");

  for (int round = 0; round < 50; ++round) {
    run(toggle_faults, [](int i) {
      // A bit that closes both gate words, and one that closes only operator new's.
      const uint32_t bit = i / 2 % 2 ? as::gate::kReserveScope : as::gate::kNewHandler;
      as::gate::change(i % 2 ? bit : 0, i % 2 ? 0 : bit);
    });
    const uint32_t bits = as::gate::bits();
    if (as::gate::g_gate.direct_below.load() != as::gate::direct_below_for(bits) ||
        as::gate::g_gate.checked_below.load() != as::gate::checked_below_for(bits) ||
        as::gate::g_gate.new_below.load() != as::gate::new_below_for(bits) ||
        as::gate::g_gate.free_call.load() != as::gate::free_call_for(bits)) {
      fprintf(stderr, "engine_races: gate %zu, new %zu for bits %#x\n",
              as::gate::g_gate.direct_below.load(), as::gate::g_gate.new_below.load(), bits);
      return 1;
    }
  }
  as::gate::change(0, as::gate::kFaults | as::gate::kReserveScope | as::gate::kNewHandler);
  printf("engine_races: engaged bits changed on two threads: gate in step\n");

  nftw(g_dir.c_str(), [](const char *path, const struct stat *, int, struct FTW *) {
    return remove(path);
  }, 8, FTW_DEPTH | FTW_PHYS);
  return 0;
}
