// engine_support.h: what the tests that link the engine directly (policy_dep, no preload)
// share. Their process's own malloc is glibc's; the engine's allocations go to its
// renamed jemalloc (backend.h), so a test sees exactly what the engine does.
#pragma once

#include <mutex>
#include <string>

#include <gtest/gtest.h>

#include "lifecycle.h"
#include "report.h"
#include "test_support.h"

namespace engine_support {

// The engine's reports (report.h) go to a temporary file while the object lives, then
// back to stderr.
class ReportCapture {
 public:
  ReportCapture() { EXPECT_EQ(allocscope::set_report_file(file_.path().c_str()), 0); }
  ~ReportCapture() { allocscope::set_report_file(""); }
  ReportCapture(const ReportCapture &) = delete;
  ReportCapture &operator=(const ReportCapture &) = delete;

  std::string text() const { return file_.text(); }

 private:
  test_support::TempFile file_;
};

// Starts the engine as the preload's constructor does (lifecycle.h), once per process:
// above all, a thread that exits then gives back what it holds (scope counts, reserve,
// budget), as it does under the preload.
inline void start_engine() {
  static std::once_flag once;
  std::call_once(once, allocscope::lifecycle::start);
}

}  // namespace engine_support
