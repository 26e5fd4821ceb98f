// preload_new_test.cc: operator new under the preload follows the thread's policy:
// under NOFAIL it waits instead of throwing, under NOWAIT it throws (once reported), and
// an installed std::new_handler gets its chance to free memory first.
#include <stdlib.h>

#include <chrono>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "allocscope.h"
#include "allocscope.hpp"
#include "preload_support.h"

namespace {

using preload_support::kMiB;

// The policy tests' fixture, named after this file's area.
using OperatorNew = preload_support::PolicyTest;

TEST_F(OperatorNew, NofailScopeMakesOperatorNewWaitNotThrow) {
  fill_budget();
  void *to_free = take_ballast();
  std::thread helper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    free(to_free);
  });
  char *p = nullptr;
  {
    allocscope::Scope nofail(ALLOCSCOPE_NOFAIL);
    EXPECT_NO_THROW(p = new char[kMiB / 2]);
  }
  EXPECT_NE(p, nullptr);
  helper.join();
  delete[] p;
}

TEST_F(OperatorNew, NowaitScopeMakesOperatorNewThrow) {
  fill_budget();
  allocscope::Scope nowait(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  // The pointers escape into volatiles, or the compiler may elide the new/delete pair.
  char *volatile p = nullptr;
  EXPECT_THROW(p = new char[kMiB], std::bad_alloc);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(p = new (std::nothrow) char[kMiB], nullptr);
}

TEST_F(OperatorNew, AThrowingOperatorNewIsReportedOnce) {
  std::vector<void *> crumbs;  // after the ballast: nothing at all left, not even for an exception
  crumbs.reserve(100000);
  fill_budget();
  while (void *p = allocscope_alloc(64, ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN)) crumbs.push_back(p);
  {
    allocscope::Scope nowait(ALLOCSCOPE_NOWAIT);
    char *volatile p = nullptr;
    EXPECT_THROW(p = new char[kMiB], std::bad_alloc);
    EXPECT_EQ(p, nullptr);
  }
  for (void *p : crumbs) free(p);
  const std::string text = log();
  EXPECT_EQ(count(text, "operator new(1048576) failed"), 1) << text;
  EXPECT_EQ(count(text, " failed: "), 1) << "the exception object's allocation is not a "
                                            "failure of its own: " << text;
}

std::vector<void *> *g_handler_ballast;
int g_handler_calls;
void free_ballast_handler() {
  ++g_handler_calls;
  for (void *p : *g_handler_ballast) free(p);
  g_handler_ballast->clear();
  std::set_new_handler(nullptr);
}
TEST_F(OperatorNew, OperatorNewCallsTheNewHandlerWhichCanFreeMemory) {
  fill_budget();
  std::vector<void *> spare = {take_ballast(), take_ballast()};
  g_handler_ballast = &spare;
  g_handler_calls = 0;
  std::set_new_handler(free_ballast_handler);
  allocscope::Scope nowait(ALLOCSCOPE_NOWAIT | ALLOCSCOPE_NOWARN);
  char *volatile p = nullptr;
  EXPECT_NO_THROW(p = new char[kMiB]);
  EXPECT_NE(p, nullptr);
  EXPECT_EQ(g_handler_calls, 1);
  delete[] p;
}

}  // namespace
