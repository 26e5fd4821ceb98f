// fault_events.cc: see fault_events.h. Every line is built in a fixed buffer by Line (no snprintf,
// no malloc) and appended with append_line (report.h: open, write, close), so the same
// code serves the exit handler, _exit and the signal handlers.
#include "fault_events.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>
#include <unwind.h>

#include <atomic>

#include "backtrace.h"
#include "callsite.h"
#include "fault.h"
#include "heap_stats.h"
#include "leak_track.h"
#include "options.h"
#include "record_format.h"
#include "report.h"
#include "stack_id.h"

namespace allocscope {
namespace fault_events {
namespace {

namespace rf = record_format;

PublishedPath g_path;
std::atomic<bool> g_installed{false};
std::atomic<bool> g_crashed{false};  // a crash line was written: one per process
constexpr int kCrashSignals[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL};
struct sigaction g_previous[65];  // the program's handlers before ours, by signal
std::atomic<bool> g_ours[65];     // our crash handler holds the signal

// A JSON line in a fixed buffer; async-signal-safe. Text that would not fit is cut (the
// reader then skips the line as unparsable rather than misread it).
class Line {
 public:
  Line &raw(const char *s) {
    while (*s != '\0' && n_ < sizeof(buf_) - 2) buf_[n_++] = *s++;
    return *this;
  }
  // A string value: quotes and backslashes escaped, control characters dropped.
  Line &str(const char *s) {
    raw("\"");
    for (; *s != '\0' && n_ < sizeof(buf_) - 4; ++s) {
      if (*s == '"' || *s == '\\') buf_[n_++] = '\\';
      if (static_cast<unsigned char>(*s) >= 0x20) buf_[n_++] = *s;
    }
    return raw("\"");
  }
  Line &num(long long v) {
    char digits[24];
    int i = 0;
    const bool negative = v < 0;
    unsigned long long u = negative ? 0ull - static_cast<unsigned long long>(v) : v;
    do digits[i++] = static_cast<char>('0' + u % 10); while ((u /= 10) != 0);
    if (negative) raw("-");
    while (i > 0 && n_ < sizeof(buf_) - 2) buf_[n_++] = digits[--i];
    return *this;
  }
  Line &hex(uintptr_t v) {
    char digits[20];
    int i = 0;
    do digits[i++] = "0123456789abcdef"[v & 15]; while ((v >>= 4) != 0);
    raw("0x");
    while (i > 0 && n_ < sizeof(buf_) - 2) buf_[n_++] = digits[--i];
    return *this;
  }
  Line &key(const char *name) { return raw(",\"").raw(name).raw("\":"); }
  // "module+0xoffset" for a return address (or for the interrupted instruction itself,
  // `exact`), as format_call_site() writes it.
  Line &frame(uintptr_t address, bool exact) {
    const uintptr_t ret = exact ? address + 1 : address;
    CallSite *s = call_site(reinterpret_cast<void *>(ret));
    raw("\"");
    if (s != nullptr && s->known()) raw(s->module()).raw("+").hex(s->offset());
    else hex(address);
    return raw("\"");
  }
  Line &frames(const uintptr_t *addresses, int n, int exact_first) {
    raw("[");
    for (int i = 0; i < n; ++i) {
      if (i != 0) raw(",");
      frame(addresses[i], i == 0 && exact_first);
    }
    return raw("]");
  }
  void write() {
    buf_[n_++] = '}';
    buf_[n_++] = '\n';
    char path[PATH_MAX];
    if (!g_path.get(path, sizeof(path))) return;
    const iovec part = {buf_, n_};
    append_line(path, &part, 1, nullptr);
  }

 private:
  char buf_[8192];
  size_t n_ = 0;
};

// The line's common head: {"v":2,"kind":K,"pid":P,"ppid":Q,"tid":T,"exe":"name"
Line &head(Line &line, const char *kind) {
  line.raw("{\"").raw(rf::kVersion).raw("\":").num(rf::kRecordVersion);
  line.key(rf::kKind).str(kind);
  line.key(rf::kPid).num(getpid());
  line.key(rf::kPpid).num(getppid());
  line.key(rf::kTid).num(gettid());
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  exe[n > 0 ? n : 0] = '\0';
  const char *slash = strrchr(exe, '/');
  return line.key(rf::kExe).str(slash != nullptr ? slash + 1 : exe);
}

// The last injection and the failed path's live bytes.
Line &injection(Line &line) {
  const fault::LastInjection &last = fault::last_injection();
  const uint64_t count = last.count.load(std::memory_order_acquire);
  line.key(rf::kInjected).num(static_cast<long long>(count));
  if (count != 0) {
    line.key(rf::kInjectionNth).num(static_cast<long long>(last.nth));
    if (last.stack != 0) {
      char hash[17];
      stack_id::format_hash(last.stack, hash);
      line.key(rf::kInjectionStack).str(hash);
    }
    if (last.callsite[0] != '\0') line.key(rf::kInjectionCallsite).str(last.callsite);
  }
  const leak_track::Totals t = leak_track::totals();
  if (t.tracking) {
    line.key(rf::kFailedPathBytes).num(static_cast<long long>(t.bytes));
    line.key(rf::kFailedPathBlocks).num(static_cast<long long>(t.blocks));
    if (t.overflow) line.key(rf::kFailedPathOverflow).raw("true");
  }
  return line;
}

void write_start() {
  Line line;
  head(line, rf::kKindStart).write();
}

// ---- stacks in signal handlers -------------------------------------------------------

struct Walk {
  uintptr_t *frames;
  int max, count;
  uintptr_t pc;  // the interrupted instruction
  int start;     // index of its frame; -1 until seen
};

_Unwind_Reason_Code on_frame(_Unwind_Context *context, void *arg) {
  auto *w = static_cast<Walk *>(arg);
  int before = 0;
  const uintptr_t ip = _Unwind_GetIPInfo(context, &before);
  if (ip == 0) return _URC_END_OF_STACK;
  if (w->start < 0 && ip == w->pc) w->start = w->count;
  w->frames[w->count++] = ip;
  return w->count == w->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

// The interrupted thread's stack, from the instruction the signal interrupted outwards:
// the unwinder walks through the handler's frames and the kernel's signal frame first.
// Returns the count; frames[0] is the instruction itself.
int signal_stack(void *ucontext, uintptr_t *out, int max) {
  uintptr_t all[kMaxFrames + 16];
  uintptr_t pc = 0;
#if defined(__x86_64__)
  pc = static_cast<uintptr_t>(static_cast<ucontext_t *>(ucontext)->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  pc = static_cast<uintptr_t>(static_cast<ucontext_t *>(ucontext)->uc_mcontext.pc);
#endif
  Walk w{all, static_cast<int>(sizeof(all) / sizeof(all[0])), 0, pc, -1};
  _Unwind_Backtrace(on_frame, &w);
  int n = 0;
  if (w.start < 0) {  // no unwind info through the signal frame: the instruction alone
    if (pc != 0 && max > 0) out[n++] = pc;
    return n;
  }
  for (int i = w.start; i < w.count && n < max; ++i) out[n++] = all[i];
  return n;
}

void write_crash(int sig, void *ucontext) {
  uintptr_t frames[kMaxFrames];
  const int n = signal_stack(ucontext, frames, kMaxFrames);
  Line line;
  head(line, rf::kKindCrash);
  line.key(rf::kSignal).num(sig);
  injection(line);
  line.key(rf::kFrames).frames(frames, n, true);
  line.write();
}

void on_crash(int sig, siginfo_t *info, void *ucontext) {
  const int saved_errno = errno;
  if (!g_crashed.exchange(true)) write_crash(sig, ucontext);
  const struct sigaction &previous = g_previous[sig];
  if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    // The program's own handler, as if ours were not there (it may return, exit or jump).
    errno = saved_errno;
    if (previous.sa_flags & SA_SIGINFO) previous.sa_sigaction(sig, info, ucontext);
    else previous.sa_handler(sig);
    return;
  }
  // The default action, so the status is the one the program has without allocscope:
  // raised again, it is delivered when this handler returns (a fault would also recur).
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  g_ours[sig].store(false);  // so that the preload's sigaction passes this one through
  sigaction(sig, &dfl, nullptr);
  syscall(SYS_tgkill, getpid(), gettid(), sig);
  errno = saved_errno;
}

// Every other thread of the process gets the signal too (tgkill: si_code SI_TKILL).
void pass_to_other_threads(int sig) {
  const int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  const pid_t self = gettid(), pid = getpid();
  char buf[4096];
  long n;
  while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
    for (long at = 0; at < n;) {
      struct Entry {
        uint64_t ino;
        int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[1];
      };
      const Entry *e = reinterpret_cast<const Entry *>(buf + at);
      at += e->reclen;
      long tid = 0;
      const char *c = e->name;
      for (; *c >= '0' && *c <= '9'; ++c) tid = tid * 10 + (*c - '0');
      if (*c != '\0' || tid == 0 || tid == self) continue;
      syscall(SYS_tgkill, pid, tid, sig);
    }
  }
  close(fd);
}

void on_stacks(int sig, siginfo_t *info, void *ucontext) {
  const int saved_errno = errno;
  if (info->si_code != SI_TKILL) pass_to_other_threads(sig);
  uintptr_t frames[kMaxFrames];
  const int n = signal_stack(ucontext, frames, kMaxFrames);
  Line line;
  head(line, rf::kKindThread);
  injection(line);
  line.key(rf::kFrames).frames(frames, n, true);
  line.write();
  errno = saved_errno;
}

// The calling thread's alternate signal stack, mapped by give_altstack (a crash by stack
// overflow needs one to run the handler on).
constexpr size_t kAltStack = 64 << 10;
__thread void *t_altstack __attribute__((tls_model("initial-exec")));

void give_altstack() {
  if (t_altstack != nullptr) return;
  void *stack = mmap(nullptr, kAltStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
  if (stack == MAP_FAILED) return;
  stack_t ss = {};
  ss.ss_sp = stack;
  ss.ss_size = kAltStack;
  if (sigaltstack(&ss, nullptr) != 0) {
    munmap(stack, kAltStack);
    return;
  }
  t_altstack = stack;
}

void install() {
  give_altstack();
  // Resolve the unwinder now, not first inside a handler.
  void *warm[2];
  capture_backtrace(warm, 2);
  for (const int sig : kCrashSignals) {
    struct sigaction sa = {};
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, &g_previous[sig]);  // (the preload's, which passes it through)
    g_ours[sig].store(true);
  }
  struct sigaction sa = {};
  sa.sa_sigaction = on_stacks;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(rf::stacks_signal(), &sa, nullptr);
}

// The exit line: the status, how the process ended, the last injection, and the stack that
// ended it. `live_bytes`: jemalloc's live total, which exit() can afford to read (mallctl)
// and _exit, async-signal-safe, cannot.
void write_exit(int status, const char *how, bool live_bytes) {
  void *frames[kMaxFrames];
  const int n = capture_backtrace(frames, kMaxFrames);
  uintptr_t addresses[kMaxFrames];
  for (int i = 0; i < n; ++i) addresses[i] = reinterpret_cast<uintptr_t>(frames[i]);
  Line line;
  head(line, rf::kKindExit);
  line.key(rf::kStatus).num(status & 0xff);
  line.key(rf::kHow).str(how);
  injection(line);
  HeapTotals heap;
  if (live_bytes && read_heap_totals(&heap))
    line.key(rf::kLiveBytes).num(static_cast<long long>(heap.allocated));
  line.key(rf::kFrames).frames(addresses, n, false);
  line.write();
}

// exit() and returning from main: on_exit hands the status over.
void on_exit_handler(int status, void *) { write_exit(status, "exit", true); }

}  // namespace

void settings_changed() {
  g_path.set(g_fault_settings.events);
  if (g_fault_settings.events[0] == '\0' || g_installed.exchange(true)) return;
  install();
  write_start();
}

bool holds_signal(int sig) { return sig > 0 && sig < 65 && g_ours[sig].load(); }

bool program_sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  if (!holds_signal(sig)) return false;
  const struct sigaction previous = g_previous[sig];
  if (act != nullptr) g_previous[sig] = *act;
  if (old != nullptr) *old = previous;
  return true;
}

void at_start() {
  if (g_installed.load()) on_exit(on_exit_handler, nullptr);
}

void thread_started() {
  if (g_installed.load(std::memory_order_relaxed)) give_altstack();
}

void thread_exiting() {
  if (t_altstack == nullptr) return;
  stack_t ss = {};
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, nullptr);
  munmap(t_altstack, kAltStack);
  t_altstack = nullptr;
}

void after_fork_child() {
  leak_track::after_fork_child();
  if (g_installed.load()) write_start();
}

void at_underscore_exit(int status, const char *how) {
  if (!g_installed.load() || g_path.empty()) return;
  write_exit(status, how, false);
}

}  // namespace fault_events
}  // namespace allocscope
