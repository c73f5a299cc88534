// Contexts and start methods: a port of CPython's TestStartMethod (test_context, test_set_get,
// test_get_all, test_preload_resources) from Lib/test/_test_multiprocessing.py, plus API.md's
// "Contexts" contract.
#include "test_helpers.hpp"

#include <gmock/gmock.h>

#include <algorithm>
#include <climits>
#include <regex>
#if !defined(_WIN32)
#include <unistd.h>
#endif

using namespace mp_test;
using ::testing::HasSubstr;

namespace {

void report_pid(std::string path) { write_file(path, std::to_string(mp::platform::current_pid())); }

void return_normally() {}

// Run in the forkserver before it forks anything (set_forkserver_preload); says so in a file
// named by the environment, which the server inherits.
void preload_marker() {
  if (const char* path = std::getenv("MP_TEST_PRELOAD_MARKER")) {
    append_line(path, "preloaded in " + std::to_string(mp::platform::current_pid()));
  }
}

// Restores the default start method (or its unset state) when a test is done with it.
class StartMethodGuard {
 public:
  StartMethodGuard() : old_(mp::get_start_method(true)) {}
  ~StartMethodGuard() { mp::set_start_method(old_ ? *old_ : std::string(), true); }
  StartMethodGuard(const StartMethodGuard&) = delete;
  StartMethodGuard& operator=(const StartMethodGuard&) = delete;

 private:
  std::optional<std::string> old_;
};

// check_context: a process started from `make` runs, and is the process it says it is.
template <class Make>
void check_context(Make make, const std::string& expected_method) {
  TempDir dir;
  mp::Process p = make(dir / "pid");
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(p.start_method(), expected_method);
  auto reported = read_file(dir / "pid");
  ASSERT_TRUE(reported.has_value());
  EXPECT_EQ(std::stoi(*reported), p.pid());
}

// The platform's default start method: forkserver on POSIX (as CPython 3.14 on Linux), spawn on
// Windows (its only one).
const std::string kDefaultMethod = kWindows ? "spawn" : "forkserver";

}  // namespace

MP_TASK(preload_marker);

// test_get_all: the platform's methods, the default (forkserver on Linux, as CPython 3.14; spawn,
// the only one, on Windows) first.
TEST(StartMethod, GetAll) {
  auto methods = mp::get_all_start_methods();
  ASSERT_FALSE(methods.empty());
  EXPECT_EQ(methods.front(), kDefaultMethod);
  std::sort(methods.begin(), methods.end());
  if (kWindows) {
    EXPECT_EQ(methods, (std::vector<std::string>{"spawn"}));
  } else {
    EXPECT_EQ(methods, (std::vector<std::string>{"fork", "forkserver", "spawn"}));
  }
}

// test_context: each context knows its method, and makes processes of that method.
TEST(StartMethod, Context) {
  for (std::string method : {"fork", "spawn", "forkserver"}) {
    if (!method_available(method)) {
      // A method this platform lacks (fork and forkserver on Windows) has no context.
      EXPECT_THROW(mp::get_context(method), mp::ValueError) << method;
      continue;
    }
    mp::Context& ctx = mp::get_context(method);
    EXPECT_EQ(ctx.get_start_method(), method);
    EXPECT_EQ(&mp::get_context(method), &ctx) << "one context per method";
    check_context([&](const std::string& path) { return ctx.Process(report_pid, path); }, method);
  }
  if (method_available("fork")) {
    EXPECT_EQ(mp::get_context("fork").process_label(), "ForkProcess");
  }
  EXPECT_EQ(mp::get_context("spawn").process_label(), "SpawnProcess");
  if (method_available("forkserver")) {
    EXPECT_EQ(mp::get_context("forkserver").process_label(), "ForkServerProcess");
  }
}

// An unknown method is a ValueError, wherever it is named.
TEST(StartMethod, UnknownMethod) {
  StartMethodGuard guard;
  EXPECT_THROW(mp::get_context("bad"), mp::ValueError);
  EXPECT_THROW(mp::get_context("Fork"), mp::ValueError);
  EXPECT_THROW(mp::set_start_method("bad", true), mp::ValueError);
  try {
    mp::get_context("nonsense");
    ADD_FAILURE() << "get_context(\"nonsense\") did not throw";
  } catch (const mp::ValueError& e) {
    EXPECT_THAT(e.what(), HasSubstr("nonsense"));
  }
}

// test_set_get: set_start_method(m, force) makes m the default, for contexts and plain Processes.
TEST(StartMethod, SetGet) {
  StartMethodGuard guard;
  int count = 0;
  for (std::string method : {"fork", "spawn", "forkserver"}) {
    if (!method_available(method)) {
      EXPECT_THROW(mp::set_start_method(method, true), mp::ValueError) << method;
      continue;
    }
    mp::set_start_method(method, true);
    EXPECT_EQ(mp::get_start_method(), method);
    EXPECT_EQ(mp::get_start_method(true), method);
    mp::Context& ctx = mp::get_context();
    EXPECT_EQ(ctx.get_start_method(), method);
    EXPECT_EQ(&ctx, &mp::get_context(method));
    std::string lower = ctx.process_label();
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    EXPECT_EQ(lower.rfind(method, 0), 0u) << lower;
    // A Process of the default context ("Process-N") uses the default method.
    check_context([](const std::string& path) { return mp::Process(report_pid, path); }, method);
    mp::Process plain(return_normally);
    EXPECT_TRUE(std::regex_match(plain.name(), std::regex("^Process-[0-9]+$"))) << plain.name();
    ++count;
  }
  EXPECT_EQ(count, static_cast<int>(mp::get_all_start_methods().size()));
}

// A second set_start_method without force is refused; force replaces; an empty method with force
// returns to "not set".
TEST(StartMethod, SetTwice) {
  StartMethodGuard guard;
  mp::set_start_method("spawn", true);
  EXPECT_THROW(mp::set_start_method("fork"), mp::ProcessError);
  EXPECT_THROW(mp::set_start_method("spawn"), mp::ProcessError);
  EXPECT_EQ(mp::get_start_method(), "spawn");
  if (method_available("fork")) {
    mp::set_start_method("fork", true);
    EXPECT_EQ(mp::get_start_method(), "fork");
  } else {
    // Forcing a method the platform lacks is a ValueError, and leaves the method as it was.
    EXPECT_THROW(mp::set_start_method("fork", true), mp::ValueError);
    EXPECT_EQ(mp::get_start_method(), "spawn");
  }

  mp::set_start_method("", true);
  EXPECT_EQ(mp::get_start_method(true), std::nullopt);
  mp::set_start_method("spawn");  // not set: allowed without force
  EXPECT_EQ(mp::get_start_method(), "spawn");
  EXPECT_THROW(mp::set_start_method("forkserver"), mp::ProcessError);
}

// The default start method is fixed by first use: get_start_method() or get_context().
TEST(StartMethod, DefaultFixedByFirstUse) {
  StartMethodGuard guard;
  mp::set_start_method("", true);
  EXPECT_EQ(mp::get_start_method(true), std::nullopt);
  EXPECT_EQ(mp::get_start_method(), kDefaultMethod);
  EXPECT_EQ(mp::get_start_method(true), kDefaultMethod);
  EXPECT_THROW(mp::set_start_method("spawn"), mp::ProcessError);

  mp::set_start_method("", true);
  EXPECT_EQ(mp::get_context().get_start_method(), kDefaultMethod);
  EXPECT_EQ(mp::get_start_method(true), kDefaultMethod);

  mp::set_start_method("", true);
  mp::Process p(return_normally);
  EXPECT_EQ(p.start_method(), kDefaultMethod);
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(p.start_method(), kDefaultMethod);
}

// A Process of the default context takes the default method at start(), not at construction.
TEST(StartMethod, DefaultResolvedAtStart) {
  MP_SKIP_UNLESS_METHOD("fork");  // needs a second start method to switch from
  StartMethodGuard guard;
  TempDir dir;
  mp::set_start_method("fork", true);
  mp::Process p(report_pid, dir / "pid");
  EXPECT_EQ(p.start_method(), "fork");
  mp::set_start_method("spawn", true);
  p.start();
  EXPECT_EQ(p.start_method(), "spawn");
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  mp::set_start_method("fork", true);
  EXPECT_EQ(p.start_method(), "spawn") << "a started process keeps its method";
}

// ctx.Process(options, ...) always uses ctx, whatever options.context says.
TEST(StartMethod, ContextProcessOverridesOptions) {
  MP_SKIP_UNLESS_METHOD("fork");  // needs a second context for options.context to name
  mp::Context& spawn = mp::get_context("spawn");
  auto p = spawn.Process(mp::ProcessOptions{.name = "opt", .daemon = true, .context = &mp::get_context("fork")},
                         return_normally);
  EXPECT_EQ(p.start_method(), "spawn");
  EXPECT_EQ(p.name(), "opt");
  EXPECT_TRUE(p.daemon());
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

// The program spawn and forkserver run is, by default, this one.
TEST(StartMethod, Executable) {
#if defined(_WIN32)
  wchar_t buf[32768];
  DWORD n = GetModuleFileNameW(nullptr, buf, static_cast<DWORD>(std::size(buf)));
  ASSERT_GT(n, 0u);
  ASSERT_LT(n, static_cast<DWORD>(std::size(buf)));
  int len = WideCharToMultiByte(CP_UTF8, 0, buf, static_cast<int>(n), nullptr, 0, nullptr, nullptr);
  std::string self(static_cast<std::size_t>(len), '\0');
  WideCharToMultiByte(CP_UTF8, 0, buf, static_cast<int>(n), self.data(), len, nullptr, nullptr);
  EXPECT_EQ(mp::get_executable(), self);
#else
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf);
  ASSERT_GT(n, 0);
  EXPECT_EQ(mp::get_executable(), std::string(buf, static_cast<std::size_t>(n)));
#endif
}

// test_preload_resources: set_forkserver_preload names MP_TASK functions, run once in the server.
TEST(StartMethod, ForkserverPreload) {
  EXPECT_THROW(mp::set_forkserver_preload({"no_such_function"}), mp::ValueError);
  MP_SKIP_UNLESS_METHOD("forkserver");
  TempDir dir;
  const std::string marker = dir / "marker";
  set_env("MP_TEST_PRELOAD_MARKER", marker);
  restart_forkserver();  // a server already running was started without the preload
  mp::set_forkserver_preload({"preload_marker"});
  mp::Context& ctx = mp::get_context("forkserver");
  for (int i = 0; i < 2; ++i) {
    auto p = ctx.Process(return_normally);
    p.start();
    ASSERT_TRUE(p.join(kLong));
    EXPECT_EQ(p.exitcode(), 0);
  }
  const int server = find_forkserver_pid();
  mp::set_forkserver_preload({});
  set_env("MP_TEST_PRELOAD_MARKER", "");
  restart_forkserver();
  ASSERT_GT(server, 0);
  EXPECT_EQ(read_file(marker), "preloaded in " + std::to_string(server) + "\n") << "run once, in the server";
}
