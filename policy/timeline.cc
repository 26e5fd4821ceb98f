// timeline.cc: see timeline.h.
#include "timeline.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>

#include "budget.h"
#include "counters.h"
#include "exit_signals.h"
#include "options.h"
#include "report.h"
#include "stats_summary.h"
#include "sys.h"
#include "text_writer.h"

namespace allocscope {
namespace timeline {
namespace {

struct Sample {
  uint64_t ms;  // since the preload started
  uint64_t charged, rss, limit;
  uint64_t failures, passes, waits;  // so far
};

// Written by one thread at a time (observe.cc's tick), read at exit.
Sample g_samples[kSamples];
std::atomic<int> g_count{0};
int g_stride = 1;  // take every g_stride-th offered sample
int g_skipped = 0;

uint64_t ms_since_start(uint64_t ns) {
  const uint64_t start = stats::g_counters.started_ns.load(std::memory_order_relaxed);
  return ns > start ? (ns - start) / sys::kNsPerMs : 0;
}

// Buffered output to a file descriptor, in 4 KiB writes.
struct Out {
  explicit Out(int out_fd) : fd(out_fd) {}
  int fd;
  bool ok = true;
  char buf[4096];
  TextWriter w{buf, sizeof(buf)};

  template <typename... Args>
  void add(const char *fmt, Args... args) {
    const size_t before = w.used;
    w.add(fmt, args...);
    if (w.used >= sizeof(buf)) {  // did not fit: flush what was there and format again
      w.used = before;
      flush();
      w.add(fmt, args...);
      if (w.used >= sizeof(buf)) w.used = sizeof(buf) - 1;  // one over-long piece, cut
    }
  }
  void flush() {
    if (w.used != 0 && !write_all(fd, buf, w.used)) ok = false;
    w.used = 0;
  }
};

constexpr int kWidth = 960, kHeight = 420, kLeft = 80, kRight = 20, kTop = 20, kBottom = 50;

void write_page(Out &o, int signal) {
  const int n = g_count.load(std::memory_order_acquire);
  uint64_t top = 1, last_ms = 1;
  for (int i = 0; i < n; ++i) {
    const Sample &s = g_samples[i];
    if (s.charged > top) top = s.charged;
    if (s.rss > top) top = s.rss;
    if (s.limit > top) top = s.limit;
    if (s.ms > last_ms) last_ms = s.ms;
  }
  top += top / 20;
  const int plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  auto x = [&](uint64_t ms) { return kLeft + static_cast<long long>(ms * plot_w / last_ms); };
  auto y = [&](uint64_t v) {
    return kTop + plot_h - static_cast<long long>((unsigned __int128)v * plot_h / top);
  };
  char comm[64] = "";
  {
    const int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      const ssize_t r = read(fd, comm, sizeof(comm) - 1);
      close(fd);
      comm[r > 0 ? r : 0] = '\0';
      for (char *c = comm; *c; ++c)
        if (*c == '\n' || *c == '<' || *c == '>' || *c == '&') *c = *c == '\n' ? '\0' : '?';
    }
  }
  const budget::Peak peak = budget::peak();
  const Sample last = n ? g_samples[n - 1] : Sample{};
  char a[32], b[32];
  o.add("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>allocscope timeline: %s (pid %d)</title>\n<style>"
        "body{font:14px sans-serif;margin:20px;color:#222}"
        "svg text{font:12px sans-serif;fill:#444}"
        ".grid{stroke:#ddd}.axis{stroke:#888}"
        ".limit{stroke:#c00;stroke-dasharray:6 4;fill:none;stroke-width:1.5}"
        ".charged{stroke:#06c;fill:none;stroke-width:2}"
        ".rss{stroke:#2a2;fill:none;stroke-width:1.5}"
        ".failure{stroke:#c00;stroke-width:2}.reclaim{stroke:#e80;stroke-width:2}"
        ".wait{stroke:#92c;stroke-width:2}"
        ".key span{display:inline-block;margin-right:18px}"
        "</style></head><body>\n",
        comm, static_cast<int>(getpid()));
  o.add("<h1>allocscope timeline: %s (pid %d)</h1>\n<p>", comm, static_cast<int>(getpid()));
  o.add("limit %s; ", last.limit ? format_size(last.limit, a, sizeof(a)) : "none");
  o.add("peak charge %s at %llu.%03llu s; ", format_size(peak.bytes, b, sizeof(b)),
        static_cast<unsigned long long>(ms_since_start(peak.at_ns) / 1000),
        static_cast<unsigned long long>(ms_since_start(peak.at_ns) % 1000));
  o.add("failures %llu, reclaim passes %llu, NOFAIL waits %llu; %d samples over %llu.%03llu s",
        static_cast<unsigned long long>(last.failures),
        static_cast<unsigned long long>(last.passes), static_cast<unsigned long long>(last.waits),
        n, static_cast<unsigned long long>(last_ms / 1000),
        static_cast<unsigned long long>(last_ms % 1000));
  if (signal != 0) o.add("; stopped by %s", exit_signals::name(signal));
  o.add("</p>\n<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
        "height=\"%d\" viewBox=\"0 0 %d %d\" data-samples=\"%d\">\n",
        kWidth, kHeight, kWidth, kHeight, n);
  // Grid and labels: five levels, five times.
  for (int i = 0; i <= 4; ++i) {
    const uint64_t v = top * static_cast<uint64_t>(i) / 4;
    o.add("<line class=\"grid\" x1=\"%d\" x2=\"%d\" y1=\"%lld\" y2=\"%lld\"/>"
          "<text x=\"%d\" y=\"%lld\" text-anchor=\"end\">%s</text>\n",
          kLeft, kWidth - kRight, y(v), y(v), kLeft - 6, y(v) + 4, format_size(v, a, sizeof(a)));
    const uint64_t t = last_ms * static_cast<uint64_t>(i) / 4;
    o.add("<text x=\"%lld\" y=\"%d\" text-anchor=\"middle\">%llu.%01llu s</text>\n", x(t),
          kHeight - kBottom + 18, static_cast<unsigned long long>(t / 1000),
          static_cast<unsigned long long>(t % 1000 / 100));
  }
  o.add("<line class=\"axis\" x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\"/>\n", kLeft, kWidth - kRight,
        kTop + plot_h, kTop + plot_h);
  // Markers where the counts grew since the sample before.
  struct Mark {
    const char *cls;
    uint64_t Sample::*field;
  };
  // Failures last: drawn over a reclaim pass at the same moment.
  for (const Mark &m : {Mark{"reclaim", &Sample::passes}, Mark{"wait", &Sample::waits},
                        Mark{"failure", &Sample::failures}}) {
    o.add("<g class=\"%ss\">", m.cls);
    for (int i = 0; i < n; ++i) {
      const uint64_t before = i ? g_samples[i - 1].*m.field : 0;
      if (g_samples[i].*m.field <= before) continue;
      o.add("<line class=\"%s\" x1=\"%lld\" x2=\"%lld\" y1=\"%d\" y2=\"%d\"><title>%llu %s "
            "at %llu ms</title></line>",
            m.cls, x(g_samples[i].ms), x(g_samples[i].ms), kTop, kTop + plot_h,
            static_cast<unsigned long long>(g_samples[i].*m.field - before), m.cls,
            static_cast<unsigned long long>(g_samples[i].ms));
    }
    o.add("</g>\n");
  }
  struct Line {
    const char *cls;
    uint64_t Sample::*field;
  };
  for (const Line &l : {Line{"limit", &Sample::limit}, Line{"rss", &Sample::rss},
                        Line{"charged", &Sample::charged}}) {
    o.add("<polyline class=\"%s\" points=\"", l.cls);
    for (int i = 0; i < n; ++i) {
      if (l.field == &Sample::limit && g_samples[i].limit == 0) continue;
      o.add("%lld,%lld ", x(g_samples[i].ms), y(g_samples[i].*l.field));
    }
    o.add("\"/>\n");
  }
  o.add("</svg>\n<p class=\"key\"><span style=\"color:#06c\">&#9644; charged</span>"
        "<span style=\"color:#2a2\">&#9644; resident (RSS)</span>"
        "<span style=\"color:#c00\">- - limit</span>"
        "<span style=\"color:#c00\">| failures</span>"
        "<span style=\"color:#e80\">| reclaim passes</span>"
        "<span style=\"color:#92c\">| NOFAIL waits</span></p>\n");
  // The samples themselves, for scripts: [ms, charged, rss, limit, failures, passes, waits].
  o.add("<script type=\"application/json\" id=\"allocscope-samples\">[");
  for (int i = 0; i < n; ++i) {
    const Sample &s = g_samples[i];
    o.add("%s[%llu,%llu,%llu,%llu,%llu,%llu,%llu]", i ? "," : "",
          static_cast<unsigned long long>(s.ms), static_cast<unsigned long long>(s.charged),
          static_cast<unsigned long long>(s.rss), static_cast<unsigned long long>(s.limit),
          static_cast<unsigned long long>(s.failures), static_cast<unsigned long long>(s.passes),
          static_cast<unsigned long long>(s.waits));
  }
  o.add("]</script>\n</body></html>\n");
}

}  // namespace

void sample(uint64_t now_ns, bool always) {
  if (g_config.timeline_file[0] == '\0') return;
  if (++g_skipped < g_stride && !always) return;
  g_skipped = 0;
  int n = g_count.load(std::memory_order_relaxed);
  if (n == kSamples) {  // full: keep every other one, and sample half as often
    for (int i = 0; i < kSamples / 2; ++i) g_samples[i] = g_samples[2 * i + 1];
    n = kSamples / 2;
    g_stride *= 2;
  }
  Sample &s = g_samples[n];
  s.ms = ms_since_start(now_ns);
  s.charged = budget::charged_estimate();
  s.rss = sys::resident_bytes();
  s.limit = budget::limit();
  s.failures = s.passes = s.waits = 0;
  for (const stats::PolicyCounters &p : stats::g_counters.policy) {
    s.failures += stats::get(p.failures);
    s.passes += stats::get(p.reclaim_passes);
    s.waits += stats::get(p.waits);
  }
  g_count.store(n + 1, std::memory_order_release);
}

void write(int signal) {
  if (g_config.timeline_file[0] == '\0') return;
  static std::atomic<bool> written{false};
  if (written.exchange(true)) return;
  sample(sys::now_ns(), true);  // the last moment, whatever the stride
  const int fd = open_output_reported("timeline_file", g_config.timeline_file, Output::kWhole);
  if (fd < 0) return;
  Out out(fd);
  write_page(out, signal);
  out.flush();
  if (!out.ok) report("timeline_file: cannot write '%s'", g_config.timeline_file);
  close(fd);
}

}  // namespace timeline
}  // namespace allocscope
