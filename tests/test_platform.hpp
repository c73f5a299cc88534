// What differs between the platforms the suite runs on, for the tests: which start methods exist,
// skipping (with the reason printed) what cannot apply, and killing a process by pid.
#pragma once

#include <mp/mp.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "platform/process.hpp"

namespace mp_test {

#if defined(_WIN32)
inline constexpr bool kWindows = true;
inline constexpr const char* kPlatformName = "Windows";
#else
inline constexpr bool kWindows = false;
inline constexpr const char* kPlatformName = "POSIX";
#endif

inline bool method_available(const std::string& method) {
  auto all = mp::get_all_start_methods();
  return std::find(all.begin(), all.end(), method) != all.end();
}

// Parameterised over start methods: a method this platform does not have (fork and forkserver on
// Windows) is skipped, saying so, never silently dropped.
template <class T>
class MethodTest : public testing::TestWithParam<T> {
 protected:
  void SetUp() override {
    std::string m = this->GetParam();
    if (!method_available(m)) GTEST_SKIP() << "start method '" << m << "' does not exist on " << kPlatformName;
  }
};

#define MP_SKIP_UNLESS_METHOD(method)                                                                   \
  if (!::mp_test::method_available(method))                                                             \
  GTEST_SKIP() << "start method '" << std::string(method) << "' does not exist on " << ::mp_test::kPlatformName

#define MP_SKIP_ON_WINDOWS(reason) \
  if (::mp_test::kWindows) GTEST_SKIP() << "not on Windows: " << reason

// Sets (or, with "", clears) an environment variable of this process; children inherit it.
inline void set_env(const std::string& name, const std::string& value) {
#if defined(_WIN32)
  _putenv_s(name.c_str(), value.c_str());
#else
  if (value.empty()) ::unsetenv(name.c_str());
  else ::setenv(name.c_str(), value.c_str(), 1);
#endif
}

// SIGKILL where there are signals; TerminateProcess with the same reading (-9) on Windows.
inline void kill_pid(int pid) { mp::platform::send_signal(pid, mp::platform::signal_kill); }

}  // namespace mp_test
