// options_test.cc: the ALLOCSCOPE_CONF grammar (options.h), linked alone as the allocscope
// command links it: sizes, booleans, every key's accepted and refused values with the exact
// line a user sees, the key lists in those lines, fault.probability's decimals and 1/N in
// 2^-64 units, call sites, case, and check_config() applying nothing.
#include "options.h"

#include <stdint.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace allocscope {
namespace {

// Every key in kKeys' order, with what its error line says it accepts, values it refuses
// and values it takes. The order and the texts are what users read: a key added to
// options.cc without a row here fails UnknownKeysListEveryKey.
struct KeyRow {
  const char *key;
  const char *accepts;
  std::vector<std::string> bad;
  std::vector<std::string> good;
};

const std::vector<KeyRow> &key_rows() {
  static const std::vector<KeyRow> rows = {
      {"policy",
       "flags joined by | (normal, nofail, nowait, noretry, retry_mayfail, nowarn, kv, "
       "noreclaim, noreclaim_class(0-15), memalloc, nomemalloc)",
       // A reserve or a fault exemption belongs to a thread, zeroing to a call site.
       {"nofail|bogus", "reserve", "nofault", "zero", "kv|reserve", "noreclaim_class(16)", "|"},
       {"nofail|kv", "NORMAL", "none", "noreclaim_class(15)|memalloc", "retry_mayfail|nowarn"}},
      {"limit",
       "a size (0 = no limit), e.g. 512M, or cgroup[-HEADROOM] (the cgroup's limit less a size, "
       "or less 5 %)",
       {"lots", "-1", "1T", "1.5G", "0x10", "cgroupX", "cgroup-", "cgroup-5%", "cgroup+1M"},
       {"0", "512M", "18446744073709551615", "cgroup", "CGROUP-256M"}},
      {"limit_scope",
       "process (each process its own limit) or tree (one limit for the process and its "
       "descendants)",
       {"both", "", "trees"},
       {"process", "TREE"}},
      {"cgroup_dir", "a directory with memory.max or memory.limit_in_bytes", {""}, {"/tmp/x"}},
      {"arena_limit", "a size (0 = none): the jemalloc arena's share of the budget", {"x"},
       {"0", "16M"}},
      {"nowait_reserve", "a size up to 512M (0 = off): memory mapped in advance for NOWAIT",
       {"1G", "536870913"}, {"0", "512M", "536870912"}},
      {"kv_threshold", "a size from 4K", {"0", "4095"}, {"4096", "4K", "1G"}},
      {"kv_direct", "a size (0 = off)", {"on"}, {"0", "1M"}},
      {"kv_guard", "true or false", {"maybe", "2"}, {"true", "off"}},
      // At least three pages (a region and its guard, and room to grow), at most 64 TiB.
      {"kv_window", "a size from 12K to 65536G, before the first region exists",
       {"big", "12287", "65537G", "99999999G"}, {"12K", "64G", "65536G"}},
      {"emergency", "a size, e.g. 1M", {"1MB"}, {"0", "1M"}},
      {"max_size", "a size from 1 to PTRDIFF_MAX", {"0", "9223372036854775808", "8G0"},
       {"1", "9223372036854775807"}},
      {"nofail_max", "a size", {"x"}, {"64K"}},
      {"nofail_overdraw_ms", "milliseconds (0 = never)", {"1s", "-1", "18446744073709551616"},
       {"0", "18446744073709551615"}},
      {"retry_max", "a number of reclaim passes from 0 to 1000000", {"1K", "1000001", "-1"},
       {"0", "1000000"}},
      {"nofail_in_nowait", "wait, fail or abort", {"maybe", "waitt"}, {"WAIT", "fail", "Abort"}},
      {"stall_warn_ms", "milliseconds (0 = never)", {"-1", "10ms"}, {"0", "250"}},
      {"rules",
       "MODULE=FLAGS joined by / (e.g. libsqlite3=nowait|nowarn/libfoo=nofail), or none",
       {"=nofail", "libx=bogus", "libx"}, {"none", "libx=nofail/liby=kv"}},
      {"warn", "true or false", {"2"}, {"yes", "No"}},
      {"warn_burst", "reports allowed per 5 seconds from 0 (no limit) to 1000000", {"1000001"},
       {"0", "1000000"}},
      {"strict", "true or false", {"perhaps"}, {"true", "0"}},
      {"stats_print", "summary (a short table), json or true (the JSON), or false", {"maybe", "table"},
       {"1", "FALSE", "summary", "JSON"}},
      {"stats_file", "a file path (%p = pid; relative to the current directory)",
       {std::string(PATH_MAX, 'x')}, {"/tmp/s.%p.json", "s.json"}},
      // Whether the file opens is for control.cc to find out: the parser takes any path.
      {"log_file",
       "stderr, or a file path (%p = pid; relative to the current directory) to a regular file "
       "of yours that can be opened for appending, with no symbolic link in the path",
       {std::string(PATH_MAX, 'x')}, {"/nonexistent-dir/x.log", "stderr"}},
      {"control",
       "true or false: live counters and a request slot in a per-user page that allocscope "
       "top, stats and ctl read",
       {"maybe", "2"}, {"true", "off"}},
      {"timeline_file",
       "a file path (%p = pid; relative to the current directory) for the HTML timeline "
       "written at exit",
       {std::string(PATH_MAX, 'x')}, {"/tmp/t.%p.html", "t.html"}},
      {"profile",
       "dump (jemalloc's heap profile now, with jemalloc's prof on: allocscope run --profile)",
       {"true", "now"}, {"dump", "DUMP"}},
      {"fault.probability",
       "a percentage from 0 to 100 (decimals allowed, e.g. 0.001), or 1/N for one in N",
       {"101", "100.1", "-1", "1/0", "1/", "1/x", "5.", ".5", "0.0000000000000000001", "1e-3",
        "50%", "0.5.5"},
       {"0", "100", "100.0", "0.001", "1/1000", "1/1", "0.000000000000000001"}},
      {"fault.interval", "a number from 1", {"0"}, {"1", "7"}},
      {"fault.times", "a number of failures, or -1 for no limit", {"-2", "x"}, {"-1", "0", "5"}},
      {"fault.space", "a number of bytes", {"9223372036854775808"}, {"4K", "9223372036854775807"}},
      {"fault.nth", "a number from 1 (the n-th eligible allocation of the process fails)", {"0"},
       {"1"}},
      {"fault.size_min", "a size", {"x"}, {"1K"}},
      {"fault.size_max", "a size", {"x"}, {"1K"}},
      {"fault.caller", "module name prefixes joined by |", {std::string(512, 'x')},
       {"libx|liby", std::string(511, 'x')}},
      {"fault.reject", "module name prefixes joined by |", {std::string(512, 'x')}, {"libx"}},
      {"fault.depth", "a number of frames from 1 to 32", {"0", "33"}, {"1", "32"}},
      {"fault.callsite", "MODULE+0xOFFSET, as fault.log and fault.record print call sites, or off",
       {"nonsense", "+0x10", "lib+0x", "lib+0xg", "lib+0x10000000000000000",
        std::string(256, 'm') + "+0x1"},
       {"off", "libfoo.so+0x1a2B", std::string(255, 'm') + "+0x1"}},
      {"fault.threads", "all or marked", {"some"}, {"all", "marked"}},
      {"fault.seed", "a number", {"-1"}, {"0", "18446744073709551615"}},
      {"fault.verbose", "0, 1 (a line per failure) or 2 (with a backtrace)", {"3"}, {"0", "2"}},
      {"fault.log", "a file path (%p = pid; relative to the current directory)",
       {std::string(PATH_MAX, 'x')}, {"/tmp/f.%p"}},
      {"fault.record", "a file path (%p = pid; relative to the current directory)",
       {std::string(PATH_MAX, 'x')}, {"/tmp/r.%p"}},
      {"fault.reset", "true: every fault key back to its default, injection off",
       {"false", "maybe"}, {"true", "yes"}},
      {"fault.only", "module name prefixes joined by | (eligibility only)",
       {std::string(512, 'x')}, {"libsqlite3", "prog|libfoo"}},
      {"fault.stack", "a stack hash (16 hex digits, as fault.record prints it), or off",
       {"xyz", "12345678901234567", "0x"}, {"0123456789abcdef", "0xABC", "off"}},
      {"fault.persistent", "true or false", {"always"}, {"true", "off"}},
      {"fault.events", "a file path (%p = pid; relative to the current directory)",
       {std::string(PATH_MAX, 'x')}, {"/tmp/e.%p.jsonl", "e.jsonl"}},
      {"fault.track_all", "true or false", {"sometimes"}, {"true", "0"}},
  };
  return rows;
}

// The errors check_config() finds in `text`, one line each.
std::string errors_of(const std::string &text, int *bad = nullptr) {
  std::string errors;
  const int n = check_config(text, "ALLOCSCOPE_CONF", &errors);
  if (bad != nullptr) *bad = n;
  return errors;
}

// The setting one good pair parses to (the test fails if the pair is bad).
Setting parsed(std::string_view pair) {
  Setting out{};
  const int bad = parse_config(
      pair, "test",
      [](const Setting &s, void *ctx) -> Refusal {
        *static_cast<Setting *>(ctx) = s;
        return nullptr;
      },
      [](const char *line, void *) { ADD_FAILURE() << line; }, &out);
  EXPECT_EQ(bad, 0) << pair;
  return out;
}

// "policy, limit, ..." in kKeys' order, as the error lines list them.
std::string key_list(bool fault) {
  std::string list;
  for (const KeyRow &row : key_rows())
    if ((std::string(row.key).rfind("fault.", 0) == 0) == fault)
      list += (list.empty() ? "" : ", ") + std::string(row.key);
  return fault ? list : list + ", fault.*";
}

TEST(ParseSize, Suffixes) {
  size_t v = 0;
  EXPECT_TRUE(parse_size("0", &v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(parse_size("4096", &v));
  EXPECT_EQ(v, 4096u);
  EXPECT_TRUE(parse_size("64K", &v));
  EXPECT_EQ(v, 64u << 10);
  EXPECT_TRUE(parse_size("512m", &v));
  EXPECT_EQ(v, 512u << 20);
  EXPECT_TRUE(parse_size("3G", &v));
  EXPECT_EQ(v, size_t{3} << 30);
}

TEST(ParseSize, Rejects) {
  size_t v = 7;
  for (const char *bad : {"", "K", "-1", "1.5G", "12T", "0x10", "18446744073709551616",
                          "17179869184G", " 5"}) {
    EXPECT_FALSE(parse_size(bad, &v)) << bad;
    EXPECT_EQ(v, 7u) << bad;
  }
}

// The largest values of each suffix: a shift that would lose bits is an overflow.
TEST(ParseSize, LargestValues) {
  size_t v = 0;
  EXPECT_TRUE(parse_size("18446744073709551615", &v));
  EXPECT_EQ(v, SIZE_MAX);
  EXPECT_TRUE(parse_size("17179869183G", &v));
  EXPECT_EQ(v, size_t{17179869183} << 30);
  EXPECT_TRUE(parse_size("17592186044415M", &v));
  EXPECT_EQ(v, size_t{17592186044415} << 20);
  EXPECT_FALSE(parse_size("17592186044416M", &v));
  EXPECT_TRUE(parse_size("18014398509481983k", &v));
  EXPECT_EQ(v, size_t{18014398509481983} << 10);
  EXPECT_FALSE(parse_size("18014398509481984K", &v));
}

TEST(ParseBool, Words) {
  bool v = false;
  for (const char *t : {"true", "TRUE", "1", "yes", "On"}) {
    v = false;
    EXPECT_TRUE(parse_bool(t, &v)) << t;
    EXPECT_TRUE(v);
  }
  for (const char *f : {"false", "0", "no", "OFF"}) {
    v = true;
    EXPECT_TRUE(parse_bool(f, &v)) << f;
    EXPECT_FALSE(v);
  }
  EXPECT_FALSE(parse_bool("maybe", &v));
  EXPECT_FALSE(parse_bool("", &v));
  EXPECT_FALSE(parse_bool("truee", &v));
  EXPECT_FALSE(parse_bool("tru", &v));
}

// Every key takes its good values, and refuses each bad one with exactly this line.
TEST(Options, EveryKeysValuesAndItsErrorLine) {
  for (const KeyRow &row : key_rows()) {
    for (const std::string &good : row.good) {
      const std::string pair = std::string(row.key) + ":" + good;
      int bad = -1;
      EXPECT_EQ(errors_of(pair, &bad), "") << pair;
      EXPECT_EQ(bad, 0) << pair;
    }
    for (const std::string &value : row.bad) {
      const std::string pair = std::string(row.key) + ":" + value;
      int bad = -1;
      const std::string line = "ALLOCSCOPE_CONF: bad value '" + value + "' for key '" +
                               row.key + "': expected " + row.accepts;
      // Lines are cut at 1023 characters (the longest values here are).
      EXPECT_EQ(errors_of(pair, &bad), line.substr(0, 1023) + "\n") << pair;
      EXPECT_EQ(bad, 1) << pair;
    }
  }
}

// An empty value is bad for every key: nothing means "the default".
TEST(Options, AnEmptyValueIsBadForEveryKey) {
  for (const KeyRow &row : key_rows()) {
    if (std::string(row.key) == "fault.caller" || std::string(row.key) == "fault.reject" ||
        std::string(row.key) == "fault.only")
      continue;  // an empty list of modules: see EmptyModuleListsAreAccepted
    int bad = -1;
    EXPECT_EQ(errors_of(std::string(row.key) + ":", &bad),
              "ALLOCSCOPE_CONF: bad value '' for key '" + std::string(row.key) + "': expected " +
                  row.accepts + "\n");
    EXPECT_EQ(bad, 1) << row.key;
  }
}

// fault.caller and fault.reject take an empty list, which selects no module.
TEST(Options, EmptyModuleListsAreAccepted) {
  EXPECT_EQ(errors_of("fault.caller:,fault.reject:,fault.only:"), "");
}

TEST(Options, UnknownKeysListEveryKey) {
  int bad = -1;
  EXPECT_EQ(errors_of("bogus:1", &bad),
            "ALLOCSCOPE_CONF: unknown key 'bogus' (known keys: " + key_list(false) + ")\n");
  EXPECT_EQ(bad, 1);
  // A fault.* key that does not exist lists the fault keys.
  EXPECT_EQ(errors_of("fault.bogus:1"),
            "ALLOCSCOPE_CONF: unknown key 'fault.bogus' (fault keys: " + key_list(true) + ")\n");
  EXPECT_EQ(errors_of("fault.:1"),
            "ALLOCSCOPE_CONF: unknown key 'fault.' (known keys: " + key_list(false) + ")\n");
  EXPECT_EQ(errors_of("novalue"), "ALLOCSCOPE_CONF: 'novalue' is not key:value (known keys: " +
                                      key_list(false) + ")\n");
  EXPECT_EQ(errors_of("fault.nth"), "ALLOCSCOPE_CONF: 'fault.nth' is not key:value (known keys: " +
                                        key_list(false) + ")\n");
}

TEST(Options, EachBadPairIsOneLineAndTheOthersParse) {
  int bad = -1;
  EXPECT_EQ(errors_of("limit:1M, bogus:1 ,,retry_max:x,warn:true,novalue,", &bad),
            "ALLOCSCOPE_CONF: unknown key 'bogus' (known keys: " + key_list(false) + ")\n" +
                "ALLOCSCOPE_CONF: bad value 'x' for key 'retry_max': expected a number of "
                "reclaim passes from 0 to 1000000\n" +
                "ALLOCSCOPE_CONF: 'novalue' is not key:value (known keys: " + key_list(false) +
                ")\n");
  EXPECT_EQ(bad, 3);
  EXPECT_EQ(errors_of(" , ,, ", &bad), "");
  EXPECT_EQ(bad, 0);
}

// A control character (a newline in a value, say) is shown as '?': the report stays one
// line, and one write.
TEST(Options, ControlCharactersAreShownAsQuestionMarks) {
  EXPECT_EQ(errors_of("limit:1\n2"),
            "ALLOCSCOPE_CONF: bad value '1?2' for key 'limit': expected a size (0 = no limit), "
            "e.g. 512M, or cgroup[-HEADROOM] (the cgroup's limit less a size, or less 5 %)\n");
  EXPECT_EQ(errors_of(std::string("bo\x01gus\x7f:1")),
            "ALLOCSCOPE_CONF: unknown key 'bo?gus?' (known keys: " + key_list(false) + ")\n");
  const std::string long_value(5000, 'v');
  const std::string errors = errors_of("limit:" + long_value);
  EXPECT_EQ(errors.size(), 1024u) << "cut at 1023 characters, then the newline";
  EXPECT_EQ(errors.find('\n'), 1023u);
}

TEST(Options, KeysAndWordsIgnoreCaseAndBlanks) {
  EXPECT_EQ(parsed(" LIMIT : 1m ").number, size_t{1} << 20);
  EXPECT_EQ(parsed("Fault.Probability:100").number, UINT64_MAX);
  EXPECT_TRUE(parsed("StAtS_PrInT:TrUe").on);
  EXPECT_EQ(parsed("POLICY: NoFail | KV ").flags, ALLOCSCOPE_NOFAIL | ALLOCSCOPE_KV);
  EXPECT_EQ(parsed("nofail_in_nowait:ABORT").action, ConflictAction::kAbort);
  EXPECT_EQ(parsed("limit:1m").key, Key::kLimit);
  EXPECT_EQ(parsed("limit: 2G").text, "2G") << "the value as written, blanks stripped";
}

// Each kind of value lands in its field of Setting, with its key.
TEST(Options, SettingsCarryTheParsedValue) {
  EXPECT_EQ(parsed("retry_max:1000000").number, 1000000u);
  EXPECT_EQ(parsed("fault.times:-1").signed_number, -1);
  EXPECT_EQ(parsed("fault.times:7").signed_number, 7);
  EXPECT_EQ(parsed("fault.threads:marked").on, true);
  EXPECT_EQ(parsed("fault.threads:all").on, false);
  EXPECT_EQ(parsed("fault.threads:Marked").on, true) << "keywords take any case";
  EXPECT_EQ(parsed("nofail_in_nowait:fail").action, ConflictAction::kFail);
  EXPECT_EQ(parsed("nofail_in_nowait:wait").action, ConflictAction::kWait);
  EXPECT_EQ(parsed("policy:normal").flags, 0u);
  EXPECT_EQ(parsed("fault.reset:on").key, Key::kFaultReset);
  const Setting site = parsed("fault.callsite:libfoo.so.1+0x1a2B");
  EXPECT_EQ(site.module, "libfoo.so.1");
  EXPECT_EQ(site.offset, 0x1a2bu);
  EXPECT_EQ(parsed("fault.callsite:off").module, "") << "off: no call site";
  EXPECT_EQ(parsed("fault.callsite:OFF").module, "");
}

// fault.probability in 2^-64 units (FaultSettings::probability): 100 is UINT64_MAX (always),
// a percentage with decimals and 1/N mean the same chance, and a non-zero chance never
// rounds to zero (it would disable injection).
TEST(Options, FaultProbabilityIn2ToTheMinus64Units) {
  auto chance = [](const char *value) {
    return parsed(std::string("fault.probability:") + value).number;
  };
  constexpr uint64_t kHalf = uint64_t{1} << 63;
  EXPECT_EQ(chance("0"), 0u);
  EXPECT_EQ(chance("100"), UINT64_MAX);
  EXPECT_EQ(chance("100.000"), UINT64_MAX);
  EXPECT_EQ(chance("1/1"), UINT64_MAX);
  EXPECT_EQ(chance("50"), kHalf);
  EXPECT_EQ(chance("50.0"), kHalf);
  EXPECT_EQ(chance("1/2"), kHalf);
  EXPECT_EQ(chance("25"), kHalf / 2);
  EXPECT_EQ(chance("1/4"), kHalf / 2);
  // 2^64 / 100000, rounded down, both ways of writing it.
  EXPECT_EQ(chance("0.001"), 184467440737095u);
  EXPECT_EQ(chance("1/100000"), 184467440737095u);
  EXPECT_EQ(chance("1/3"), 6148914691236517205u);
  EXPECT_EQ(chance("1/18446744073709551615"), 1u);
  // 10^-18 percent is 0.18 units: still a chance, the smallest.
  EXPECT_EQ(chance("0.000000000000000001"), 1u);
  EXPECT_EQ(chance("0.000000000000000000"), 0u) << "an exact zero is zero";
  EXPECT_LT(chance("0.001"), chance("0.0011"));
  EXPECT_LT(chance("99.999"), UINT64_MAX);
}

TEST(Options, CallSites) {
  std::string_view module;
  uintptr_t offset = 0;
  ASSERT_TRUE(parse_callsite("libc.so.6+0xABCdef", &module, &offset));
  EXPECT_EQ(module, "libc.so.6");
  EXPECT_EQ(offset, 0xabcdefu);
  // The offset follows the last "+0x": a module's name may contain one.
  ASSERT_TRUE(parse_callsite("odd+0xname+0x10", &module, &offset));
  EXPECT_EQ(module, "odd+0xname");
  EXPECT_EQ(offset, 0x10u);
  ASSERT_TRUE(parse_callsite("prog+0xffffffffffffffff", &module, &offset));
  EXPECT_EQ(offset, UINTPTR_MAX);
  module = "unchanged";
  offset = 7;
  for (const char *bad : {"", "prog", "+0x10", "prog+0x", "prog+0x1g", "prog+10", "prog-0x10",
                          "prog+0x10000000000000000"}) {
    EXPECT_FALSE(parse_callsite(bad, &module, &offset)) << bad;
    EXPECT_EQ(module, "unchanged") << bad;
    EXPECT_EQ(offset, 7u) << bad;
  }
}

// A window no address space can hold is refused when it is configured, not at the first
// region.
TEST(Options, KvWindowIsBoundedWhenConfigured) {
  std::string errors;
  EXPECT_EQ(check_config("kv_window:99999999G", "test", &errors), 1);
  EXPECT_NE(errors.find("bad value '99999999G' for key 'kv_window': expected a size from 12K "
                        "to 65536G"),
            std::string::npos)
      << errors;
  errors.clear();
  EXPECT_EQ(check_config("kv_window:65536G,kv_window:4K", "test", &errors), 1) << errors;
}

// check_config() only parses: the configuration in force does not move, and a bad pair
// is counted, not fatal, even after strict:true (strictness is control.cc's to apply).
TEST(Options, CheckConfigAppliesNothing) {
  const Flags policy = g_config.policy.load();
  const unsigned retry_max = g_config.retry_max.load();
  int bad = -1;
  const std::string errors =
      errors_of("policy:nofail|kv,retry_max:3,strict:true,stats_file:/tmp/x,limit:lots", &bad);
  EXPECT_EQ(bad, 1);
  EXPECT_EQ(errors,
            "ALLOCSCOPE_CONF: bad value 'lots' for key 'limit': expected a size (0 = no limit), "
            "e.g. 512M, or cgroup[-HEADROOM] (the cgroup's limit less a size, or less 5 %)\n");
  EXPECT_EQ(g_config.policy.load(), policy);
  EXPECT_EQ(g_config.retry_max.load(), retry_max);
  EXPECT_FALSE(g_config.strict.load());
  EXPECT_STREQ(g_config.stats_file, "");
  // Errors accumulate in the caller's string.
  std::string both = "earlier\n";
  EXPECT_EQ(check_config("warn:maybe", "allocscope run", &both), 1);
  EXPECT_EQ(both,
            "earlier\nallocscope run: bad value 'maybe' for key 'warn': expected true or false\n");
}

}  // namespace
}  // namespace allocscope
