// options.h: allocscope's settings: the values the engine reads, the grammar of
// ALLOCSCOPE_CONF, and the one table of configuration keys.
//
// A leaf: parsing calls into no module. control.h applies what parse_config() parses (it
// is the only configuration code that calls into modules), and the allocscope command
// links this file alone to check a configuration before it runs anything
// (check_config), so both speak exactly one grammar.
//
// Grammar (jemalloc's MALLOC_CONF style): "key:value,key:value". Keys are
// case-insensitive; surrounding blanks are ignored. Booleans are true/false (also 1/0,
// yes/no, on/off); sizes are decimal with an optional K, M or G suffix (powers of 1024);
// durations are milliseconds; flags are names joined by | (flags.h). A bad pair is one
// message naming the source, the key, the value and what is accepted; the other pairs
// still apply.
//
// The keys: options.cc's kKeys (name, what it accepts, its parser). README.md's
// configuration table describes each; when you add a key, add it there too.
#pragma once

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <atomic>
#include <string>
#include <string_view>

#include "flags.h"
#include "mutex.h"
#include "resolve.h"

namespace allocscope {

// The plain values the engine reads on its slow paths, while allocscope_config() may
// write them: relaxed atomics (each value stands alone). Constant-initialised: valid
// before any constructor runs, and until the last exit handler. Values a module owns
// (the limit, the regions' window, the rules) live in that module.
struct Config {
  std::atomic<bool> strict{false};
  std::atomic<bool> warn{true};  // failure reports (NOWARN silences one allocation)
  std::atomic<uint8_t> stats_print{0};  // a StatsPrint
  std::atomic<Flags> policy{kPolicyNormal};  // the process default scope flags
  // Larger requests fail, even NOFAIL. Start-up lowers it to what the kernel would back
  // (sys.h: largest_backable_size); the max_size key overrides that.
  std::atomic<size_t> max_size{static_cast<size_t>(PTRDIFF_MAX)};
  std::atomic<size_t> nofail_max{static_cast<size_t>(INT_MAX)};
  std::atomic<uint64_t> nofail_overdraw_ms{0};  // 0 = never overdraw
  std::atomic<unsigned> retry_max{16};
  std::atomic<ConflictAction> nofail_in_nowait{ConflictAction::kWait};
  std::atomic<uint64_t> stall_warn_ms{10000};
  std::atomic<unsigned> warn_burst{10};  // reports per 5 s (warn_alloc's ratelimit); 0 = all
  std::atomic<size_t> kv_threshold{64 << 10};  // KV allocations from this size may use regions
  // KV allocations from this size go straight to a region, skipping the arena (the
  // kv_direct key; 0 = off).
  std::atomic<size_t> kv_to_region_from{0};
  // The cgroup directory limit:cgroup reads ("" = the process's own; the test-only
  // cgroup_dir key). Written under g_config_mutex.
  char cgroup_dir[PATH_MAX] = "";
  // Written under g_config_mutex, read at exit.
  char stats_file[PATH_MAX] = "";
  char log_file[PATH_MAX] = "";
  // The live page (live_page.h): on with control:true (allocscope run turns it on).
  std::atomic<bool> control{false};
  // The timeline page written at exit (timeline.h); "" = none. Written under g_config_mutex.
  char timeline_file[PATH_MAX] = "";
};

// What stats_print prints at exit: nothing, the JSON (true, json) or the summary.
enum class StatsPrint : uint8_t { kOff, kJson, kSummary };

extern Config g_config;

// Serialises applying configurations (control.cc) and the writers of the text fields.
extern Mutex g_config_mutex;

// Fork (lifecycle.cc): the configuration lock is held across fork().
namespace options {
void prefork() ABSL_EXCLUSIVE_LOCK_FUNCTION(g_config_mutex);
void postfork_parent() ABSL_UNLOCK_FUNCTION(g_config_mutex);
void postfork_child() ABSL_UNLOCK_FUNCTION(g_config_mutex);
}  // namespace options

// A relaxed atomic that can be copied: FaultSettings is reset by assigning a
// default-constructed one, member by member.
template <typename T>
class Relaxed {
 public:
  constexpr Relaxed(T value = T{}) : value_(value) {}  // NOLINT: implicit on purpose
  Relaxed(const Relaxed &other) : value_(other.load()) {}
  Relaxed &operator=(const Relaxed &other) {
    store(other.load());
    return *this;
  }
  T load() const { return value_.load(std::memory_order_relaxed); }
  void store(T value) { value_.store(value, std::memory_order_relaxed); }
  // For the countdowns fault.cc decrements with compare-and-swap.
  std::atomic<T> &atomic() { return value_; }

 private:
  std::atomic<T> value_;
};

// The fault.* keys (fault.h says what each does). times, space and nth are also the
// countdowns fault.cc decrements as failures happen. Text fields are written under
// g_config_mutex.
struct FaultSettings {
  // Some key that selects failures (probability, caller, callsite) was set.
  Relaxed<bool> enabled{false};
  // The chance of failing a candidate, in 2^-64 units (fault.probability:100 is
  // UINT64_MAX, which always fails); 0 disables everything but nth, as in the kernel.
  Relaxed<uint64_t> probability{UINT64_MAX};
  Relaxed<uint64_t> interval{1};
  Relaxed<int64_t> times{-1};
  Relaxed<int64_t> space{0};
  Relaxed<uint64_t> nth{0};  // the process countdown; 0 = off
  Relaxed<size_t> size_min{0};
  Relaxed<size_t> size_max{SIZE_MAX};
  Relaxed<int> depth{8};
  Relaxed<bool> marked_only{false};
  Relaxed<int> verbose{0};
  Relaxed<uint64_t> seed{0x9E3779B97F4A7C15ull};
  Relaxed<bool> callsite_set{false};
  Relaxed<uintptr_t> callsite_offset{0};
  char callsite_module[256] = "";
  char caller[512] = "";  // module prefixes joined by |
  char reject[512] = "";
  char only[512] = "";    // fault.only: module prefixes joined by |
  Relaxed<bool> stack_set{false};  // fault.stack selects one stack
  Relaxed<uint64_t> stack{0};      // ... this stack hash (stack_id.h)
  Relaxed<bool> persistent{false};  // fault.persistent
  char events[PATH_MAX] = "";       // fault.events (fault_events.h)
  Relaxed<bool> track_all{false};   // fault.track_all (leak_track.h)
  char log[PATH_MAX] = "";
  char record[PATH_MAX] = "";
};

extern FaultSettings g_fault_settings;

// Every configuration key, one per row of options.cc's table.
enum class Key {
  kPolicy, kLimit, kLimitScope, kCgroupDir, kArenaLimit, kNowaitReserve, kKvThreshold, kKvDirect, kKvGuard,
  kKvWindow, kEmergency, kMaxSize, kNofailMax, kNofailOverdrawMs, kRetryMax,
  kNofailInNowait, kStallWarnMs, kRules, kWarn, kWarnBurst, kStrict, kStatsPrint,
  kStatsFile, kLogFile, kControl, kTimelineFile, kProfile,
  kFaultProbability, kFaultInterval, kFaultTimes, kFaultSpace, kFaultNth, kFaultSizeMin,
  kFaultSizeMax, kFaultCaller, kFaultReject, kFaultDepth, kFaultCallsite, kFaultThreads,
  kFaultSeed, kFaultVerbose, kFaultLog, kFaultRecord, kFaultReset, kFaultOnly, kFaultStack,
  kFaultPersistent, kFaultEvents, kFaultTrackAll,
};

// One parsed pair. `text` is the value as written (stripped of blanks); the key's parser
// fills the field its kind of value uses.
struct Setting {
  Key key;
  std::string_view text;
  uint64_t number = 0;  // sizes, counts, milliseconds, fault.probability (2^-64 units)
  int64_t signed_number = 0;  // fault.times (-1 = unlimited)
  bool on = false;            // booleans; limit: cgroup[-HEADROOM] (number = the headroom,
                              // or UINT64_MAX for the default 5 %); limit_scope: tree
  Flags flags = 0;            // policy
  ConflictAction action = ConflictAction::kWait;  // nofail_in_nowait
  uintptr_t offset = 0;       // fault.callsite: the module is text up to "+0x"
                              // (fault.stack: number is the hash; on: a hash was given)
  std::string_view module;    // fault.callsite's module
};

// What applying a setting says of it: nullptr, applied; kRefused, refused (the error line
// says what the key accepts); any other text, refused for that reason (the line gives it,
// e.g. "no cgroup memory controller is visible").
using Refusal = const char *;
inline constexpr Refusal kRefused = "";

// Splits `text` into pairs and parses each. A pair that parses is handed to
// apply(setting, ctx), which may still refuse it (a file that does not open, a cgroup
// that cannot be read); a pair that does not parse, or is refused, is described in one line
// (no newline, control characters shown as '?') given to on_error(line, ctx). Returns the
// number of bad pairs. Allocates nothing: it runs inside the preload.
int parse_config(std::string_view text, const char *source,
                 Refusal (*apply)(const Setting &setting, void *ctx),
                 void (*on_error)(const char *line, void *ctx), void *ctx);

// Checks `text` without applying anything: appends each bad pair's line (what the preload
// would report after "allocscope: ") and a newline to *errors. Returns the number of bad
// pairs. For the allocscope command.
int check_config(std::string_view text, const char *source, std::string *errors);

// Parses a size with an optional K/M/G suffix; false if `text` is not one or overflows.
bool parse_size(std::string_view text, size_t *out);

// Parses true/false, 1/0, yes/no, on/off (any case).
bool parse_bool(std::string_view text, bool *out);

// The rules key's grammar (rules.h says what a rule does): "MODULE=FLAGS/MODULE=FLAGS",
// at most kMaxRules, or "none" (no rules). Fills out[0, *count); false if `text` is bad.
inline constexpr int kMaxRules = 16;
struct RuleText {
  char module[64];  // a file-name prefix
  Flags flags;
};
bool parse_rules(std::string_view text, RuleText *out, int *count);

// A call site as fault.log and fault.record print it, "module+0xoffset".
bool parse_callsite(std::string_view text, std::string_view *module, uintptr_t *offset);

}  // namespace allocscope
