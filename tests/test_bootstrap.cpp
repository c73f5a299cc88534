// The bootstrap idiom done wrong: clear errors, and no hang in the parent.
#include <mp/mp.hpp>

#include <gtest/gtest.h>

#include "test_platform.hpp"

#include <array>
#include <cstdio>
#include <memory>
#include <string>
#include <cstdlib>

namespace {
// `program`: how the shell names the probe (BOOTSTRAP_PROBE, an absolute path, or a relative one).
std::string run(const std::string& mode, const std::string& method, const std::string& program = BOOTSTRAP_PROBE) {
  mp_test::set_env("MP_PROBE_MODE", mode);
  mp_test::set_env("MP_PROBE_METHOD", method);
#if defined(_WIN32)
  // Beside this test program (the build-time path is a Unix one under Wine); cmd.exe's quoting.
  (void)program;
  std::string exe = mp::platform::executable_path();
  std::string probe = exe.substr(0, exe.find_last_of("\\/") + 1) + "bootstrap_probe.exe";
  std::string cmd = "\"\"" + probe + "\" 2>&1\"";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(_popen(cmd.c_str(), "r"), _pclose);
#else
  std::string cmd = "timeout 60 " + program + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
#endif
  std::string out;
  std::array<char, 4096> buf;
  while (auto n = fread(buf.data(), 1, buf.size(), pipe.get())) out.append(buf.data(), n);
  return out;
}
class Bootstrap : public mp_test::MethodTest<std::string> {};
}  // namespace

// CPython: "An attempt has been made to start a new process before the current process has
// finished its bootstrapping phase."
TEST_P(Bootstrap, StartBeforeFreezeSupportIsAClearErrorInTheChild) {
  std::string out = run("start-first", GetParam());
  EXPECT_NE(out.find("bootstrapping phase"), std::string::npos) << out;
  EXPECT_NE(out.find("mp::freeze_support()"), std::string::npos) << out;
  // The parent joined a failed child (spawn), or start() said the forkserver could not run.
  bool joined = out.find("stopped exitcode=") != std::string::npos;
  bool refused = out.find("start failed: mp: the forkserver is not working") != std::string::npos;
  EXPECT_TRUE(GetParam() == "spawn" ? joined : refused) << out;
  EXPECT_EQ(out.find("exitcode=0>"), std::string::npos) << out;
  EXPECT_EQ(out.find("the child ran its target"), std::string::npos) << out;
}

TEST_P(Bootstrap, MainWithoutFreezeSupportFailsInsteadOfPretending) {
  std::string out = run("no-freeze", GetParam());
  EXPECT_NE(out.find("without calling mp::freeze_support()"), std::string::npos) << out;
  EXPECT_EQ(out.find("the child ran its target"), std::string::npos) << out;
  if (GetParam() == "spawn") {
    EXPECT_NE(out.find("stopped exitcode=1>"), std::string::npos) << out;
  } else {
    EXPECT_NE(out.find("start failed: mp: the forkserver is not working"), std::string::npos) << out;
  }
}

INSTANTIATE_TEST_SUITE_P(ChildStartMethods, Bootstrap, testing::Values("spawn", "forkserver"));

// A program started by a relative path that then changes directory still starts its children
// (without /proc, where the program is comes from argv[0], resolved against the start-up directory).
TEST_P(Bootstrap, RelativeProgramPathAndChdir) {
  MP_SKIP_ON_WINDOWS("the program is started through a POSIX shell; Windows finds its executable with GetModuleFileNameW");
  std::string probe = BOOTSTRAP_PROBE;
  auto slash = probe.rfind('/');
  ASSERT_NE(slash, std::string::npos);
  std::string relative = "sh -c 'cd " + probe.substr(0, slash) + " && exec ./" + probe.substr(slash + 1) + "'";
  std::string out = run("chdir", GetParam(), relative);
  EXPECT_NE(out.find("the child ran its target"), std::string::npos) << out;
  EXPECT_NE(out.find("stopped exitcode=0>"), std::string::npos) << out;
}

TEST(BootstrapFork, ForkNeedsNoFreezeSupport) {
  MP_SKIP_UNLESS_METHOD("fork");
  std::string out = run("no-freeze", "fork");
  EXPECT_NE(out.find("the child ran its target"), std::string::npos) << out;
  EXPECT_NE(out.find("stopped exitcode=0>"), std::string::npos) << out;
}
