// What is particular to each start method: the forkserver's server, preload and authentication;
// spawn's executable and finding targets by name.
#include "core/src/popen.hpp"
#include "core/src/wire.hpp"
#include "platform/socket.hpp"

#include <mp/mp.hpp>

#include <gtest/gtest.h>

#include "test_platform.hpp"

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;

namespace {

// A space in the name: executables and files under such paths must work (quoting on Windows).
fs::path temp_dir() {
  static int n = 0;
  fs::path d = fs::temp_directory_path() /
               ("mp test-" + std::to_string(mp::platform::current_pid()) + "-" + std::to_string(++n));
  fs::create_directories(d);
  return d;
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::ifstream in(p);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

void append_line(const std::string& path, const std::string& line) {
  std::ofstream(path, std::ios::app) << line << std::endl;
}

void report_parent(std::string path) { append_line(path, std::to_string(mp::platform::parent_pid())); }

void preload_marker() {
  if (const char* p = std::getenv("MP_TEST_PRELOAD_FILE")) append_line(p, std::to_string(mp::platform::current_pid()));
}
MP_TASK(preload_marker);

void named_target(std::string path, int value) { append_line(path, "named " + std::to_string(value)); }
MP_TASK(named_target);

void unnamed_target(int) {}

}  // namespace

TEST(ForkServer, OneServerForksEveryChild) {
  MP_SKIP_UNLESS_METHOD("forkserver");
  auto dir = temp_dir();
  auto& ctx = mp::get_context("forkserver");
  for (int i = 0; i < 3; ++i) {
    auto p = ctx.Process(report_parent, (dir / "ppid").string());
    p.start();
    ASSERT_TRUE(p.join(mp::Seconds(30)));
    ASSERT_EQ(p.exitcode(), 0);
  }
  auto info = mp::detail::forkserver_info();
  ASSERT_TRUE(info);
  auto ppids = lines_of(dir / "ppid");
  ASSERT_EQ(ppids.size(), 3u);
  for (auto& l : ppids) EXPECT_EQ(l, std::to_string(info->pid));
  EXPECT_NE(info->pid, mp::platform::current_pid());
  fs::remove_all(dir);
}

TEST(ForkServer, PreloadRunsOnceInTheServer) {
  MP_SKIP_UNLESS_METHOD("forkserver");
  auto dir = temp_dir();
  std::string file = (dir / "preload").string();
  mp_test::set_env("MP_TEST_PRELOAD_FILE", file);
  mp::set_forkserver_preload({"preload_marker"});
  auto& ctx = mp::get_context("forkserver");
  for (int i = 0; i < 2; ++i) {
    auto p = ctx.Process(report_parent, (dir / "ppid").string());
    p.start();
    ASSERT_TRUE(p.join(mp::Seconds(30)));
  }
  auto info = mp::detail::forkserver_info();
  ASSERT_TRUE(info);
  auto preload = lines_of(file);
  ASSERT_EQ(preload.size(), 1u);
  EXPECT_EQ(preload[0], std::to_string(info->pid));
  mp_test::set_env("MP_TEST_PRELOAD_FILE", "");
  fs::remove_all(dir);
}

TEST(ForkServer, PreloadOfAnUnregisteredNameIsAValueError) {
  MP_SKIP_UNLESS_METHOD("forkserver");
  EXPECT_THROW(mp::set_forkserver_preload({"no_such_function"}), mp::ValueError);
}

TEST(ForkServer, ControlSocketRefusesAWrongKeyAndKeepsServing) {
  MP_SKIP_UNLESS_METHOD("forkserver");
  auto& ctx = mp::get_context("forkserver");
  auto first = ctx.Process(unnamed_target, 1);
  first.start();
  ASSERT_TRUE(first.join(mp::Seconds(30)));
  auto info = mp::detail::forkserver_info();
  ASSERT_TRUE(info);
  auto intruder = mp::platform::connect_local(info->address);
  EXPECT_THROW(mp::detail::answer_challenge(intruder.get(), mp::AuthKey("not the key")), mp::AuthenticationError);
  intruder.reset();
  auto second = ctx.Process(unnamed_target, 2);
  second.start();
  ASSERT_TRUE(second.join(mp::Seconds(30)));
  EXPECT_EQ(second.exitcode(), 0);
  EXPECT_EQ(mp::detail::forkserver_info()->pid, info->pid);
}

TEST(ForkServer, AKilledServerIsReplaced) {
  MP_SKIP_UNLESS_METHOD("forkserver");
  auto& ctx = mp::get_context("forkserver");
  auto first = ctx.Process(unnamed_target, 1);
  first.start();
  ASSERT_TRUE(first.join(mp::Seconds(30)));
  auto info = mp::detail::forkserver_info();
  ASSERT_TRUE(info);
  mp_test::kill_pid(info->pid);
  auto second = ctx.Process(unnamed_target, 2);
  second.start();
  ASSERT_TRUE(second.join(mp::Seconds(30)));
  EXPECT_EQ(second.exitcode(), 0);
  EXPECT_NE(mp::detail::forkserver_info()->pid, info->pid);
}

TEST(ForkServer, ChildOutlivingTheServerReadsAs255) {
  MP_SKIP_UNLESS_METHOD("forkserver");
  // The server reports exit codes; if it dies first, the sentinel reads EOF (CPython: 255).
  auto& ctx = mp::get_context("forkserver");
  auto p = ctx.Process([](double s) { std::this_thread::sleep_for(mp::Seconds(s)); }, 0.3);
  p.start();
  auto info = mp::detail::forkserver_info();
  ASSERT_TRUE(info);
  mp_test::kill_pid(info->pid);
  ASSERT_TRUE(p.join(mp::Seconds(30)));
  EXPECT_EQ(p.exitcode(), 255);
}

class SpawnExecutable : public mp_test::MethodTest<std::string> {};

TEST_P(SpawnExecutable, AnotherProgramFindsRegisteredTargetsByName) {
  auto dir = temp_dir();
  // A copy of this very test program under another path: "another binary" as far as paths go.
  fs::path copy = dir / (mp_test::kWindows ? "copy_of_tests.exe" : "copy_of_tests");
  fs::copy_file(mp::platform::executable_path(), copy);
  fs::permissions(copy, fs::perms::owner_all);
  std::string saved = mp::get_executable();
  mp::set_executable(copy.string());
  auto& ctx = mp::get_context(GetParam());
  auto p = ctx.Process(named_target, (dir / "out").string(), 5);
  p.start();
  ASSERT_TRUE(p.join(mp::Seconds(30)));
  EXPECT_EQ(p.exitcode(), 0);
  auto out = lines_of(dir / "out");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], "named 5");

  // An unregistered function cannot be found by address in another program: refused at start().
  auto q = ctx.Process(unnamed_target, 1);
  try {
    q.start();
    FAIL() << "start() should have refused";
  } catch (const mp::ProcessError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("set_executable"), std::string::npos) << what;
    EXPECT_NE(what.find("MP_TASK"), std::string::npos) << what;
    EXPECT_NE(what.find(GetParam()), std::string::npos) << what;
  }
  mp::set_executable(saved);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Methods, SpawnExecutable, testing::Values("spawn", "forkserver"));
