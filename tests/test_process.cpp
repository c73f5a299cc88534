// mp::Process under every start method: a port of the cases of CPython's
// Lib/test/_test_multiprocessing.py (_TestProcess, _TestSubclassingProcess, TestForkserver...)
// that apply to C++, plus the library's own contract (API.md: Process, Bootstrap and tasks).
//
// Every test is parameterised over "fork", "spawn" and "forkserver". Under spawn and forkserver a
// child is a fresh run of this binary (test_main.cpp calls mp::freeze_support() first), so targets
// are plain functions, captureless lambdas or MP_TASK_TYPE types, and children report back through
// their exit code or through files in a temporary directory (Connection/Queue do not exist yet).
//
// Not ported: test_set_executable (needs a second binary), test_process_mainthread_native_id
// (threads), test_child_fd_inflation and test_wait_for_threads (Python-specific), the 'threads'
// (multiprocessing.dummy) variants.
#include "test_helpers.hpp"

#include <gmock/gmock.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>
#include <regex>
#include <sstream>
#include <tuple>
#if defined(_WIN32)
#include <fcntl.h>
#include <io.h>
#include <sys/stat.h>
#else
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#endif

using namespace mp_test;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

// The exit code a killed process reads back as: -SIGKILL (TerminateProcess reads -9 on Windows,
// which has no SIGKILL).
const int kSigKill = mp::platform::signal_kill;

// Whether a process sentinel is ready (its process has ended) within `timeout_ms`.
bool sentinel_ready(mp::native_handle_t h, int timeout_ms) {
#if defined(_WIN32)
  return WaitForSingleObject(h, static_cast<DWORD>(timeout_ms)) == WAIT_OBJECT_0;
#else
  pollfd pfd{h, POLLIN, 0};
  return ::poll(&pfd, 1, timeout_ms) == 1 && pfd.revents != 0;
#endif
}

// ---- child targets -------------------------------------------------------------------------------

void return_normally() {}

void exit_with(int code) { mp::sys_exit(code); }

void std_exit_with(int code) { std::exit(code); }

void throw_runtime_error(std::string what) { throw std::runtime_error(what); }

void throw_value_error(std::string what) { throw mp::ValueError(what); }

void throw_int() { throw 42; }

[[maybe_unused]] void raise_signal(int sig) { ::raise(sig); }

// SystemExit is deliberately not a std::exception: catch (const std::exception&) lets it through.
void sys_exit_through_catch(int code) {
  try {
    mp::sys_exit(code);
  } catch (const std::exception&) {
    std::exit(99);
  }
}

// Waits until `path` exists (exit 0) or `seconds` pass (exit 3): the stand-in for an Event.
void wait_for_go(std::string path, double seconds) {
  if (!wait_for_file(path, std::chrono::duration<double>(seconds))) mp::sys_exit(3);
}

void sleep_then_write(std::string path, double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  write_file(path, "done");
}

// test_process's _test: reports its arguments, name, authkey and pid, then waits for "go".
void report_identity(std::string dir, int a, int b) {
  const mp::Process& me = mp::current_process();
  std::ostringstream out;
  out << a << ' ' << b << '\n'
      << me.name() << '\n'
      << me.pid().value_or(-1) << '\n'
      << mp::platform::current_pid() << '\n'
      << (me.daemon() ? "daemon" : "not-daemon") << '\n';
  // The authkey first: the test reads it once "identity" exists.
  write_file(dir + "/authkey", bytes_to_string(me.authkey().bytes()));
  write_file(dir + "/identity", out.str());
  if (!wait_for_file(dir + "/go")) mp::sys_exit(3);
}

struct Point {
  int x = 0;
  std::string label;
};

// test_args_argument: values of several codec-supported types arrive intact.
void check_args(int i, double d, std::string s, std::vector<int> v, std::map<std::string, int> m, Point p,
                std::optional<int> o, std::tuple<int, std::string> t) {
  if (i != 42) mp::sys_exit(10);
  if (d != 2.5) mp::sys_exit(11);
  if (s != "hello") mp::sys_exit(12);
  if (v != std::vector<int>{1, 2, 3}) mp::sys_exit(13);
  if (m != std::map<std::string, int>{{"a", 1}, {"b", 2}}) mp::sys_exit(14);
  if (p.x != 7 || p.label != "seven") mp::sys_exit(15);
  if (o != 9) mp::sys_exit(16);
  if (t != std::tuple<int, std::string>{3, "three"}) mp::sys_exit(17);
}

void takes_const_refs(const std::string& s, const std::vector<int>& v) {
  mp::sys_exit(static_cast<int>(s.size() + v.size()));
}

void check_parent(int expected_pid) {
  mp::Process* parent = mp::parent_process();
  if (parent == nullptr) mp::sys_exit(10);
  if (parent->pid() != expected_pid) mp::sys_exit(11);
  if (parent->name() != "MainProcess") mp::sys_exit(12);
  if (!parent->is_alive()) mp::sys_exit(13);
  if (mp::current_process().pid() != mp::platform::current_pid()) mp::sys_exit(14);
  if (mp::current_process().name() == "MainProcess") mp::sys_exit(15);
}

// test_parent_process: the grandchild notices the death of its parent.
void report_parent_status(std::string dir) {
  mp::Process* parent = mp::parent_process();
  if (parent == nullptr) mp::sys_exit(10);
  write_file(dir + "/first", parent->is_alive() ? "alive" : "not alive");
  parent->join(kLong);
  write_file(dir + "/second", parent->is_alive() ? "alive" : "not alive");
}

void create_grandchild_and_sleep(std::string method, std::string dir) {
  auto p = mp::get_context(method).Process(report_parent_status, dir);
  p.start();
  std::this_thread::sleep_for(60s);  // terminated by the test long before
}

void check_authkey(std::string expected) {
  if (bytes_to_string(mp::current_process().authkey().bytes()) != expected) mp::sys_exit(4);
}

void report_name(std::string path) { write_file(path, mp::current_process().name()); }

void check_daemon_flag(bool expected) {
  if (mp::current_process().daemon() != expected) mp::sys_exit(5);
}

// A daemonic process may not have children.
void daemon_tries_to_start(std::string method) {
  auto p = mp::get_context(method).Process(return_normally);
  try {
    p.start();
  } catch (const mp::AssertionError&) {
    return;  // exit code 0: refused as it should be
  } catch (...) {
    mp::sys_exit(2);
  }
  p.join(kLong);
  mp::sys_exit(3);
}

// test_recursion: a child that starts children (one at a time, so the log order is fixed).
void recurse(std::string method, std::string log, std::vector<int> id) {
  std::string text = "[";
  for (std::size_t i = 0; i < id.size(); ++i) {
    if (i) text += ',';  // (not `"," + to_string`: gcc 12 -O3 warns falsely, -Wrestrict)
    text += std::to_string(id[i]);
  }
  append_line(log, text + "] " + mp::current_process().name());
  if (id.size() < 2) {
    for (int i = 0; i < 2; ++i) {
      std::vector<int> next = id;
      next.push_back(i);
      auto p = mp::get_context(method).Process(recurse, method, log, next);
      p.start();
      if (!p.join(kLong) || p.exitcode() != 0) throw std::runtime_error("a recursive child failed");
    }
  }
}

// What is open in the child: "fd target" lines (the listing's own descriptor left out).
// (POSIX only: Windows has no numbered descriptors to list; the test using it skips there.)
[[maybe_unused]] void report_fds(std::string path) {
#if defined(_WIN32)
  write_file(path, "");
#else
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) mp::sys_exit(20);
  int self = ::dirfd(d);
  std::string text;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd == self) continue;
    char buf[512];
    std::string link = std::string("/proc/self/fd/") + e->d_name;
    ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
    std::string target = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "?";
    text += std::to_string(fd) + " " + target + "\n";
  }
  ::closedir(d);
  write_file(path, text);
#endif
}

// Daemon / non-daemon children at a child's exit: the grandchild records its pid and then either
// sleeps for long (a daemon: must be terminated when the child exits) or briefly (a non-daemon: the
// child's exit must wait for it, so "done" exists once the child has ended).
void grandchild_main(std::string pidfile, std::string donefile, double seconds) {
  write_file(pidfile, std::to_string(mp::platform::current_pid()));
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  write_file(donefile, "done");
}

// how: 0 returns (the bootstrap's exit handling), 1 calls std::exit(0) (the atexit handler, as at
// the end of a main program), 2 calls mp::sys_exit(0).
void start_grandchild_then_exit(std::string method, std::string pidfile, std::string donefile, bool daemonic,
                                int how) {
  auto gc = mp::get_context(method).Process(mp::ProcessOptions{.name = {}, .daemon = daemonic, .context = nullptr},
                                            grandchild_main, pidfile, donefile, daemonic ? 60.0 : 0.3);
  gc.start();
  if (!wait_for_file(pidfile)) mp::sys_exit(20);
  // Exiting: daemonic children are terminated, the others joined.
  if (how == 1) std::exit(0);
  if (how == 2) mp::sys_exit(0);
}

// test_stderr_flush / test_sys_exit: buffered output is flushed at the child's exit, and an
// uncaught exception is reported on stderr.
void write_buffered_then(std::string out_path, std::string err_path, int how) {
#if defined(_WIN32)
  int out = ::_open(out_path.c_str(), _O_WRONLY | _O_CREAT | _O_TRUNC | _O_BINARY, _S_IREAD | _S_IWRITE);
  int err = ::_open(err_path.c_str(), _O_WRONLY | _O_CREAT | _O_TRUNC | _O_BINARY, _S_IREAD | _S_IWRITE);
  std::fflush(stdout);
  ::_dup2(out, 1);
  ::_dup2(err, 2);
  ::_close(out);
  ::_close(err);
#else
  int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::fflush(stdout);
  ::dup2(out, 1);
  ::dup2(err, 2);
  ::close(out);
  ::close(err);
#endif
  std::printf("printf without newline");
  std::cout << " | cout without flush";
  if (how == 0) return;
  if (how == 1) mp::sys_exit(3);
  throw std::runtime_error("boom after output");
}

int g_after_fork_runs = 0;       // incremented by a callback registered during static initialisation
int g_runtime_after_fork = 0;    // set by a callback registered at run time (fork children only)
[[maybe_unused]] const bool g_after_fork_registered = [] {
  mp::register_after_fork([] { ++g_after_fork_runs; });
  return true;
}();

void check_after_fork(int expected_runs, int expected_runtime) {
  if (g_after_fork_runs != expected_runs) mp::sys_exit(10 + g_after_fork_runs);
  if (g_runtime_after_fork != expected_runtime) mp::sys_exit(20 + g_runtime_after_fork);
}

// test_lose_target_ref: the parent drops its copies of the target and arguments once started.
struct Counted {
  static inline int live = 0;
  int value = 5;
  Counted() { ++live; }
  Counted(const Counted& o) : value(o.value) { ++live; }
  Counted(Counted&& o) noexcept : value(o.value) { ++live; }
  Counted& operator=(const Counted&) = default;
  Counted& operator=(Counted&&) = default;
  ~Counted() { --live; }
  template <class A>
  void serialize(A& a) { a(value); }
};

void take_counted(Counted c) { mp::sys_exit(c.value); }

// A callable aggregate (no boilerplate: its fields travel through Boost.PFR).
struct CountedCallable {
  Counted counted;
  int extra = 0;
  void operator()() const { mp::sys_exit(counted.value + extra); }
};

void takes_pointer(int* p) { mp::sys_exit(p ? 0 : 1); }

// The child replaces itself with another program (its sentinel handles are close-on-exec).
// (POSIX only: Windows has no exec that replaces a process; the tests using it skip there.)
void exec_shell(std::string script) {
#if !defined(_WIN32)
  ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
#endif
  (void)script;
  mp::sys_exit(127);
}

void check_big(std::string text, std::size_t expected_size) {
  if (text.size() != expected_size) mp::sys_exit(5);
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != static_cast<char>('a' + i % 26)) mp::sys_exit(6);
  }
}

}  // namespace

MP_TASK_TYPE(CountedCallable);

// ---- Process subclasses (_TestSubclassingProcess) -----------------------------------------------

class UpperCaser : public mp::Process {
 public:
  UpperCaser() = default;
  UpperCaser(mp::Context& ctx, std::string text, std::string out)
      : mp::Process(mp::ProcessOptions{.name = {}, .daemon = {}, .context = &ctx}),
        text_(std::move(text)),
        out_(std::move(out)) {}
  void run() override {
    std::string upper = text_;
    std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
    write_file(out_, upper + "\n" + mp::current_process().name());
  }
  template <class Archive>
  void serialize(Archive& ar) { ar(text_, out_); }

 private:
  std::string text_;
  std::string out_;
};
MP_TASK_TYPE(UpperCaser);

class ExitSeven : public mp::Process {
 public:
  ExitSeven() = default;
  explicit ExitSeven(mp::Context& ctx) : mp::Process(mp::ProcessOptions{.name = {}, .daemon = {}, .context = &ctx}) {}
  void run() override { mp::sys_exit(7); }
};
MP_TASK_TYPE(ExitSeven);

class NotRegistered : public mp::Process {
 public:
  explicit NotRegistered(mp::Context& ctx) : mp::Process(mp::ProcessOptions{.name = {}, .daemon = {}, .context = &ctx}) {}
  void run() override { mp::sys_exit(6); }
};

// ---- the fixture -----------------------------------------------------------------------------------

class ProcessTest : public mp_test::MethodTest<std::string> {
 protected:
  const std::string& method() const { return GetParam(); }
  mp::Context& ctx() const { return mp::get_context(GetParam()); }
  std::string label() const { return ctx().process_label(); }
  TempDir dir_;
};

INSTANTIATE_TEST_SUITE_P(Methods, ProcessTest, ::testing::Values("fork", "spawn", "forkserver"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// _TestProcess.test_current
TEST_P(ProcessTest, Current) {
  mp::Process& current = mp::current_process();
  EXPECT_TRUE(current.is_alive());
  EXPECT_FALSE(current.daemon());
  EXPECT_GT(current.authkey().size(), 0u);
  EXPECT_EQ(current.pid(), mp::platform::current_pid());
  EXPECT_EQ(current.ident(), mp::platform::current_pid());
  EXPECT_EQ(current.exitcode(), std::nullopt);
  EXPECT_EQ(current.name(), "MainProcess");
  EXPECT_EQ(mp::parent_process(), nullptr);
  EXPECT_THROW(current.join(), mp::AssertionError);
  EXPECT_THROW(current.join(0.1s), mp::AssertionError);
  std::ostringstream repr;
  repr << current;
  EXPECT_EQ(repr.str(), "<_MainProcess name='MainProcess' parent=None started>");
}

// _TestProcess.test_daemon_argument
TEST_P(ProcessTest, DaemonArgument) {
  auto p0 = ctx().Process(return_normally);
  EXPECT_EQ(p0.daemon(), mp::current_process().daemon());
  auto p1 = ctx().Process(mp::ProcessOptions{.name = {}, .daemon = true, .context = nullptr}, return_normally);
  EXPECT_TRUE(p1.daemon());
  auto p2 = ctx().Process(mp::ProcessOptions{.name = {}, .daemon = false, .context = nullptr}, return_normally);
  EXPECT_FALSE(p2.daemon());
  auto p3 = mp::Process(mp::ProcessOptions{.name = {}, .daemon = true, .context = &ctx()}, return_normally);
  EXPECT_TRUE(p3.daemon());
  EXPECT_EQ(p3.start_method(), method());
}

// _TestProcess.test_process
TEST_P(ProcessTest, Process) {
  auto p = ctx().Process(mp::ProcessOptions{.name = "SomeProcess", .daemon = {}, .context = nullptr},
                         report_identity, dir_.path(), 1, 2);
  p.daemon(true);
  mp::Process& current = mp::current_process();
  EXPECT_EQ(p.authkey(), current.authkey());
  EXPECT_FALSE(p.is_alive());
  EXPECT_TRUE(p.daemon());
  EXPECT_EQ(p.exitcode(), std::nullopt);
  EXPECT_EQ(p.pid(), std::nullopt);
  EXPECT_EQ(p.start_method(), method());

  p.start();
  ASSERT_TRUE(p.pid().has_value());
  EXPECT_EQ(p.ident(), p.pid());
  EXPECT_EQ(p.exitcode(), std::nullopt);
  EXPECT_TRUE(p.is_alive());
  EXPECT_EQ(pids_of(mp::active_children()).count(*p.pid()), 1u);

  ASSERT_TRUE(wait_for_file(dir_ / "identity"));
  std::istringstream in(read_file(dir_ / "identity").value_or(""));
  std::string args, name, reported_pid, getpid_line, daemon;
  std::getline(in, args);
  std::getline(in, name);
  std::getline(in, reported_pid);
  std::getline(in, getpid_line);
  std::getline(in, daemon);
  EXPECT_EQ(args, "1 2");
  EXPECT_EQ(name, "SomeProcess");
  EXPECT_EQ(reported_pid, std::to_string(*p.pid()));
  EXPECT_EQ(getpid_line, std::to_string(*p.pid()));
  EXPECT_EQ(daemon, "daemon");
  EXPECT_EQ(read_file(dir_ / "authkey"), bytes_to_string(current.authkey().bytes()));

  write_file(dir_ / "go", "");
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(pids_of(mp::active_children()).count(*p.pid()), 0u);
  EXPECT_EQ(p.start_method(), method());
}

// _TestProcess.test_args_argument: arguments of many codec types, decay-copied at construction.
TEST_P(ProcessTest, ArgsArgument) {
  int i = 42;
  std::string s = "hello";
  std::vector<int> v{1, 2, 3};
  auto p = ctx().Process(check_args, i, 2.5, s, v, std::map<std::string, int>{{"a", 1}, {"b", 2}},
                         Point{7, "seven"}, std::optional<int>(9), std::tuple<int, std::string>{3, "three"});
  // Taken by value as std::thread takes them: later changes do not reach the child.
  i = 0;
  s = "changed";
  v.clear();
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);

  auto q = ctx().Process(takes_const_refs, std::string("abcd"), std::vector<int>{1, 2, 3});
  q.start();
  ASSERT_TRUE(q.join(kLong));
  EXPECT_EQ(q.exitcode(), 7);

  auto lambda = ctx().Process([](int a, std::string b) { mp::sys_exit(a + static_cast<int>(b.size())); }, 3,
                              std::string("four"));
  lambda.start();
  ASSERT_TRUE(lambda.join(kLong));
  EXPECT_EQ(lambda.exitcode(), 7);
}

// Exit codes: 0, N from sys_exit(N) and std::exit(N), -N when killed by signal N.
TEST_P(ProcessTest, ExitCodes) {
  struct Case {
    std::function<mp::Process()> make;
    int expected;
    const char* what;
  };
  mp::Context& c = ctx();
  std::vector<Case> cases{
      {[&] { return c.Process(return_normally); }, 0, "return"},
      {[&] { return c.Process(exit_with, 0); }, 0, "sys_exit(0)"},
      {[&] { return c.Process(exit_with, 8); }, 8, "sys_exit(8)"},
      {[&] { return c.Process(exit_with, 255); }, 255, "sys_exit(255)"},
      {[&] { return c.Process(std_exit_with, 0); }, 0, "std::exit(0)"},
      {[&] { return c.Process(std_exit_with, 5); }, 5, "std::exit(5)"},
      {[&] { return c.Process(sys_exit_through_catch, 6); }, 6, "sys_exit through catch(std::exception&)"},
  };
#if !defined(_WIN32)
  // (Windows has no SIGUSR1, and a raised signal there ends the process with exit code 3.)
  cases.push_back({[&] { return c.Process(raise_signal, SIGUSR1); }, -SIGUSR1, "raise(SIGUSR1)"});
#endif
  for (auto& k : cases) {
    auto p = k.make();
    p.daemon(true);
    p.start();
    ASSERT_TRUE(p.join(kLong)) << k.what;
    EXPECT_EQ(p.exitcode(), k.expected) << k.what;
    EXPECT_FALSE(p.is_alive()) << k.what;
  }
}

// An uncaught exception: exit code 1, and "Process <name>:" then the type and what() on stderr.
TEST_P(ProcessTest, UncaughtExceptionReport) {
  StderrCapture cap(method(), dir_ / "stderr");
  auto p1 = ctx().Process(throw_runtime_error, std::string("something went wrong"));
  auto p2 = ctx().Process(throw_value_error, std::string("bad value here"));
  auto p3 = ctx().Process(throw_int);
  for (auto* p : {&p1, &p2, &p3}) {
    p->start();
    ASSERT_TRUE(p->join(kLong));
  }
  std::string err = cap.finish();
  EXPECT_EQ(p1.exitcode(), 1);
  EXPECT_EQ(p2.exitcode(), 1);
  EXPECT_EQ(p3.exitcode(), 1);
  EXPECT_THAT(err, HasSubstr("Process " + p1.name() + ":\nstd::runtime_error: something went wrong\n"));
  EXPECT_THAT(err, HasSubstr("Process " + p2.name() + ":\nmp::ValueError: bad value here\n"));
  EXPECT_THAT(err, HasSubstr("Process " + p3.name() + ":\nint\n"));
}

// _TestSubclassingProcess.test_stderr_flush and test_sys_exit: buffered output reaches the file
// whether the child returns, calls sys_exit, or dies of an exception.
TEST_P(ProcessTest, StdStreamsFlushedAtExit) {
  for (int how : {0, 1, 2}) {
    std::string out = dir_ / ("out" + std::to_string(how));
    std::string err = dir_ / ("err" + std::to_string(how));
    auto p = ctx().Process(write_buffered_then, out, err, how);
    p.start();
    ASSERT_TRUE(p.join(kLong)) << how;
    EXPECT_EQ(p.exitcode(), how == 0 ? 0 : how == 1 ? 3 : 1) << how;
    EXPECT_EQ(read_file(out), "printf without newline | cout without flush") << how;
    if (how == 2) {
      EXPECT_EQ(read_file(err), "Process " + p.name() + ":\nstd::runtime_error: boom after output\n");
    } else {
      EXPECT_EQ(read_file(err), "") << how;
    }
  }
}

// join(timeout) returns false after roughly the timeout while the child runs, true once it ended.
TEST_P(ProcessTest, JoinTimeout) {
  auto p = ctx().Process(wait_for_go, dir_ / "go", 30.0);
  p.start();
  auto t0 = Clock::now();
  EXPECT_FALSE(p.join(0.2s));
  double waited = elapsed_since(t0);
  EXPECT_GE(waited, 0.18);
  EXPECT_LT(waited, 3.0);
  EXPECT_TRUE(p.is_alive());
  t0 = Clock::now();
  EXPECT_FALSE(p.join(0s));
  EXPECT_LT(elapsed_since(t0), 0.5);
  write_file(dir_ / "go", "");
  EXPECT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_TRUE(p.join(0s));  // joining an ended process again is fine
  EXPECT_TRUE(p.join());
}

// _TestProcess.test_terminate / test_kill (_kill_process)
TEST_P(ProcessTest, Terminate) {
  auto p = ctx().Process(wait_for_go, dir_ / "never", 60.0);
  p.daemon(true);
  p.start();
  EXPECT_TRUE(p.is_alive());
  EXPECT_EQ(pids_of(mp::active_children()).count(*p.pid()), 1u);
  EXPECT_EQ(p.exitcode(), std::nullopt);

  auto t0 = Clock::now();
  EXPECT_FALSE(p.join(0s));
  EXPECT_LT(elapsed_since(t0), 0.5);
  EXPECT_TRUE(p.is_alive());
  t0 = Clock::now();
  EXPECT_FALSE(p.join(-1s));  // a negative timeout does not wait
  EXPECT_LT(elapsed_since(t0), 0.5);
  EXPECT_TRUE(p.is_alive());

  p.terminate();
  t0 = Clock::now();
  EXPECT_TRUE(p.join(kLong));
  EXPECT_LT(elapsed_since(t0), 5.0);
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(pids_of(mp::active_children()).count(*p.pid()), 0u);
  EXPECT_TRUE(p.join());
  EXPECT_EQ(p.exitcode(), -SIGTERM);
  // Signalling an ended (and reaped) process is a no-op, never a signal to a reused pid.
  EXPECT_NO_THROW(p.terminate());
  EXPECT_NO_THROW(p.kill());
  EXPECT_EQ(p.exitcode(), -SIGTERM);
}

TEST_P(ProcessTest, Kill) {
  auto p = ctx().Process(wait_for_go, dir_ / "never", 60.0);
  p.daemon(true);
  p.start();
  EXPECT_TRUE(p.is_alive());
  EXPECT_FALSE(p.join(0s));
  p.kill();
  EXPECT_TRUE(p.join(kLong));
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.exitcode(), -kSigKill);
}

// Names: "<Label>-N" from one counter per parent, explicit names, the setter.
TEST_P(ProcessTest, Names) {
  const std::regex pattern("^" + label() + "-([0-9]+)$");
  auto a = ctx().Process(return_normally);
  auto b = ctx().Process(return_normally);
  std::smatch ma, mb;
  std::string na = a.name(), nb = b.name();
  ASSERT_TRUE(std::regex_match(na, ma, pattern)) << na;
  ASSERT_TRUE(std::regex_match(nb, mb, pattern)) << nb;
  EXPECT_EQ(std::stoi(mb[1]), std::stoi(ma[1]) + 1);

  // The default context's plain Process is "Process-N" from the same counter.
  auto plain = mp::Process(return_normally);
  EXPECT_EQ(plain.name(), "Process-" + std::to_string(std::stoi(mb[1]) + 1));

  auto named = ctx().Process(mp::ProcessOptions{.name = "custom", .daemon = {}, .context = nullptr}, return_normally);
  EXPECT_EQ(named.name(), "custom");

  // The name as seen by the child, after the setter.
  auto r = ctx().Process(report_name, dir_ / "name");
  r.name("renamed");
  EXPECT_EQ(r.name(), "renamed");
  r.start();
  ASSERT_TRUE(r.join(kLong));
  EXPECT_EQ(r.exitcode(), 0);
  EXPECT_EQ(read_file(dir_ / "name"), "renamed");
  r.name("renamed-after-start");  // allowed, as in CPython
  EXPECT_EQ(r.name(), "renamed-after-start");

  // A default name travels too.
  auto d = ctx().Process(report_name, dir_ / "default-name");
  std::string expected = d.name();
  EXPECT_TRUE(std::regex_match(expected, pattern)) << expected;
  d.start();
  ASSERT_TRUE(d.join(kLong));
  EXPECT_EQ(read_file(dir_ / "default-name"), expected);
}

// The daemon flag travels, and cannot change once started.
TEST_P(ProcessTest, DaemonSetter) {
  auto p = ctx().Process(check_daemon_flag, true);
  EXPECT_FALSE(p.daemon());
  p.daemon(true);
  EXPECT_TRUE(p.daemon());
  p.start();
  EXPECT_THROW(p.daemon(false), mp::AssertionError);
  EXPECT_TRUE(p.daemon());
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);

  auto q = ctx().Process(check_daemon_flag, false);
  q.start();
  ASSERT_TRUE(q.join(kLong));
  EXPECT_EQ(q.exitcode(), 0);
}

// A daemonic process is not allowed to have children.
TEST_P(ProcessTest, DaemonCannotStartChildren) {
  auto p = ctx().Process(mp::ProcessOptions{.name = {}, .daemon = true, .context = nullptr}, daemon_tries_to_start,
                         method());
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

// Misuse: start twice, join before start, join of the current process.
TEST_P(ProcessTest, Misuse) {
  auto p = ctx().Process(return_normally);
  EXPECT_THROW(p.join(), mp::AssertionError);
  EXPECT_THROW(p.join(0s), mp::AssertionError);
  EXPECT_THROW((void)p.sentinel(), mp::ValueError);
  p.start();
  EXPECT_THROW(p.start(), mp::AssertionError);
  ASSERT_TRUE(p.join(kLong));
  EXPECT_THROW(p.start(), mp::AssertionError);
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_THROW(mp::current_process().join(), mp::AssertionError);
  EXPECT_THROW(mp::current_process().start(), mp::AssertionError);
}

// _TestProcess.test_sentinel
TEST_P(ProcessTest, Sentinel) {
  auto p = ctx().Process(wait_for_go, dir_ / "go", 30.0);
  EXPECT_THROW((void)p.sentinel(), mp::ValueError);
  p.start();
  mp::Sentinel s = p.sentinel();
  ASSERT_NE(s.handle, mp::Sentinel{}.handle) << "no sentinel handle";
  EXPECT_EQ(p.sentinel(), s);
  EXPECT_FALSE(sentinel_ready(s.handle, 0)) << "sentinel ready while the child runs";
  write_file(dir_ / "go", "");
  EXPECT_TRUE(sentinel_ready(s.handle, 30000)) << "sentinel not ready after the child ended";
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

// _TestProcess.test_close
TEST_P(ProcessTest, Close) {
  auto p = ctx().Process(wait_for_go, dir_ / "go", 30.0);
  p.daemon(true);
  p.start();
  EXPECT_TRUE(p.is_alive());
  EXPECT_THROW(p.close(), mp::ValueError);  // still running
  EXPECT_TRUE(p.is_alive());
  write_file(dir_ / "go", "");
  ASSERT_TRUE(p.join(kLong));
  EXPECT_FALSE(p.is_alive());
  EXPECT_EQ(p.exitcode(), 0);
  p.close();
  EXPECT_THROW(p.is_alive(), mp::ValueError);
  EXPECT_THROW(p.join(), mp::ValueError);
  EXPECT_THROW(p.join(0s), mp::ValueError);
  EXPECT_THROW(p.terminate(), mp::ValueError);
  EXPECT_THROW(p.kill(), mp::ValueError);
  EXPECT_THROW(p.start(), mp::ValueError);
  EXPECT_THROW((void)p.pid(), mp::ValueError);
  EXPECT_THROW((void)p.ident(), mp::ValueError);
  EXPECT_THROW((void)p.exitcode(), mp::ValueError);
  EXPECT_THROW((void)p.sentinel(), mp::ValueError);
  EXPECT_NO_THROW(p.close());  // closing twice is fine
  std::ostringstream repr;
  repr << p;
  EXPECT_THAT(repr.str(), HasSubstr(" closed daemon>"));
  EXPECT_THAT(repr.str(), Not(HasSubstr("pid=")));
}

// Closing a never-started process is allowed; it cannot be started afterwards.
TEST_P(ProcessTest, CloseBeforeStart) {
  auto p = ctx().Process(return_normally);
  EXPECT_NO_THROW(p.close());
  EXPECT_THROW(p.start(), mp::ValueError);
}

// operator<< prints Python's repr through the life of a process.
TEST_P(ProcessTest, Repr) {
  const std::string me = std::to_string(mp::platform::current_pid());
  auto p = ctx().Process(wait_for_go, dir_ / "go", 30.0);
  std::string name = p.name();
  auto repr = [&] {
    std::ostringstream o;
    o << p;
    return o.str();
  };
  EXPECT_EQ(repr(), "<" + label() + " name='" + name + "' parent=" + me + " initial>");
  p.daemon(true);
  EXPECT_EQ(repr(), "<" + label() + " name='" + name + "' parent=" + me + " initial daemon>");
  p.start();
  std::string pid = std::to_string(*p.pid());
  EXPECT_EQ(repr(), "<" + label() + " name='" + name + "' pid=" + pid + " parent=" + me + " started daemon>");
  p.terminate();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(repr(), "<" + label() + " name='" + name + "' pid=" + pid + " parent=" + me +
                        " stopped exitcode=-SIGTERM daemon>");
  p.close();
  EXPECT_EQ(repr(), "<" + label() + " name='" + name + "' parent=" + me + " closed daemon>");

  auto q = ctx().Process(exit_with, 3);
  q.start();
  ASSERT_TRUE(q.join(kLong));
  std::ostringstream o;
  o << q;
  EXPECT_THAT(o.str(), HasSubstr(" stopped exitcode=3>"));
}

// _TestProcess.test_active_children
TEST_P(ProcessTest, ActiveChildren) {
  auto p = ctx().Process(wait_for_go, dir_ / "go", 30.0);
  std::vector<mp::Process> before = mp::active_children();
  p.daemon(true);
  p.start();
  const int pid = *p.pid();
  EXPECT_EQ(pids_of(mp::active_children()).count(pid), 1u);
  EXPECT_EQ(mp::active_children().size(), before.size() + 1);
  write_file(dir_ / "go", "");
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(pids_of(mp::active_children()).count(pid), 0u);
  EXPECT_EQ(mp::active_children().size(), before.size());
}

// A finished child leaves active_children() even when never joined (CPython joins it on the way).
TEST_P(ProcessTest, ActiveChildrenReapsFinished) {
  auto p = ctx().Process(return_normally);
  p.start();
  const int pid = *p.pid();
  ASSERT_TRUE(wait_process_ended(pid));
  auto deadline = Clock::now() + kLong;
  while (pids_of(mp::active_children()).count(pid) != 0 && Clock::now() < deadline) std::this_thread::sleep_for(2ms);
  EXPECT_EQ(pids_of(mp::active_children()).count(pid), 0u);
  EXPECT_EQ(p.exitcode(), 0);
}

// parent_process() in a child: the parent's pid and name.
TEST_P(ProcessTest, ParentProcessAttributes) {
  EXPECT_EQ(mp::parent_process(), nullptr);
  auto p = ctx().Process(check_parent, mp::platform::current_pid());
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

// _TestProcess.test_parent_process: a grandchild notices its parent's death.
TEST_P(ProcessTest, ParentProcessDeath) {
  auto p = ctx().Process(create_grandchild_and_sleep, method(), dir_.path());
  p.start();
  ASSERT_TRUE(wait_for_file(dir_ / "first")) << "the grandchild did not report";
  EXPECT_EQ(read_file(dir_ / "first"), "alive");
  p.terminate();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), -SIGTERM);
  ASSERT_TRUE(wait_for_file(dir_ / "second")) << "the grandchild did not report";
  EXPECT_EQ(read_file(dir_ / "second"), "not alive");
}

// _TestProcess.test_recursion
TEST_P(ProcessTest, Recursion) {
  std::string log = dir_ / "log";
  recurse(method(), log, {});
  std::istringstream in(read_file(log).value_or(""));
  std::vector<std::string> ids, names;
  for (std::string line; std::getline(in, line);) {
    auto sp = line.find(' ');
    ids.push_back(line.substr(0, sp));
    names.push_back(sp == std::string::npos ? "" : line.substr(sp + 1));
  }
  ASSERT_EQ(ids, (std::vector<std::string>{"[]", "[0]", "[0,0]", "[0,1]", "[1]", "[1,0]", "[1,1]"}));
  EXPECT_EQ(names[0], "MainProcess");
  std::smatch m;
  ASSERT_TRUE(std::regex_match(names[1], m, std::regex("^" + label() + "-([0-9]+)$"))) << names[1];
  const int n = std::stoi(m[1]);
  const std::string l = label() + "-";
  EXPECT_EQ(names[2], l + std::to_string(n) + ":1");
  EXPECT_EQ(names[3], l + std::to_string(n) + ":2");
  EXPECT_EQ(names[4], l + std::to_string(n + 1));
  EXPECT_EQ(names[5], l + std::to_string(n + 1) + ":1");
  EXPECT_EQ(names[6], l + std::to_string(n + 1) + ":2");
}

// _TestProcess.test_many_processes
TEST_P(ProcessTest, ManyProcesses) {
  constexpr int N = 50;
  std::vector<mp::Process> procs;
  for (int i = 0; i < N; ++i) procs.push_back(ctx().Process(exit_with, i));
  for (auto& p : procs) p.start();
  for (auto& p : procs) ASSERT_TRUE(p.join(kLong));
  for (int i = 0; i < N; ++i) EXPECT_EQ(procs[static_cast<std::size_t>(i)].exitcode(), i);

  std::vector<mp::Process> sleepers;
  for (int i = 0; i < N; ++i) sleepers.push_back(ctx().Process(wait_for_go, dir_ / "never", 60.0));
  for (auto& p : sleepers) p.start();
  for (auto& p : sleepers) p.terminate();
  for (auto& p : sleepers) ASSERT_TRUE(p.join(kLong));
  for (auto& p : sleepers) EXPECT_EQ(p.exitcode(), -SIGTERM);
  EXPECT_TRUE(mp::active_children().empty());
}

// _TestProcess.test_lose_target_ref: the parent's copies of target and arguments are dropped
// once the child has been joined (CPython drops them at start(); mp keeps them until the child
// ends, so named objects and shared-heap blocks they carry outlive the child's use of them).
TEST_P(ProcessTest, LoseTargetRef) {
  const int base = Counted::live;
  {
    Counted c;
    c.value = 5;
    auto p = ctx().Process(take_counted, c);
    EXPECT_EQ(Counted::live, base + 2);  // ours and the Process's
    p.start();
    ASSERT_TRUE(p.join(kLong));
    EXPECT_EQ(p.exitcode(), 5);
    EXPECT_EQ(Counted::live, base + 1);
  }
  EXPECT_EQ(Counted::live, base);
  {
    CountedCallable target;
    target.counted.value = 4;
    target.extra = 2;
    auto p = ctx().Process(target);
    EXPECT_EQ(Counted::live, base + 2);
    p.start();
    ASSERT_TRUE(p.join(kLong));
    EXPECT_EQ(p.exitcode(), 6);
    EXPECT_EQ(Counted::live, base + 1);
  }
  EXPECT_EQ(Counted::live, base);
}

// The child's authkey is the parent's (or the one set on the Process).
TEST_P(ProcessTest, AuthkeyInherited) {
  std::string parent_key = bytes_to_string(mp::current_process().authkey().bytes());
  ASSERT_FALSE(parent_key.empty());
  auto p = ctx().Process(check_authkey, parent_key);
  EXPECT_EQ(p.authkey(), mp::current_process().authkey());
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);

  auto q = ctx().Process(check_authkey, std::string("a custom key"));
  q.authkey(mp::AuthKey(std::string_view("a custom key")));
  EXPECT_EQ(bytes_to_string(q.authkey().bytes()), "a custom key");
  q.start();
  ASSERT_TRUE(q.join(kLong));
  EXPECT_EQ(q.exitcode(), 0);

  // The negative case really fails: the child compares.
  auto r = ctx().Process(check_authkey, std::string("not the key"));
  r.start();
  ASSERT_TRUE(r.join(kLong));
  EXPECT_EQ(r.exitcode(), 4);
}

// At a process's normal exit its daemonic children are terminated...
TEST_P(ProcessTest, DaemonChildrenTerminatedAtExit) {
  for (int how : {0, 1, 2}) {
    const std::string pidfile = dir_ / ("pid" + std::to_string(how));
    const std::string donefile = dir_ / ("done" + std::to_string(how));
    auto p = ctx().Process(start_grandchild_then_exit, method(), pidfile, donefile, true, how);
    p.start();
    ASSERT_TRUE(p.join(kLong)) << how;
    EXPECT_EQ(p.exitcode(), 0) << how;
    auto pid_text = read_file(pidfile);
    ASSERT_TRUE(pid_text.has_value()) << how;
    const int gc = std::stoi(*pid_text);
    ASSERT_GT(gc, 0);
    EXPECT_TRUE(wait_process_ended(gc, 5s)) << "the daemonic grandchild " << gc << " survived its parent; how=" << how;
    if (!process_ended(gc)) kill_pid(gc);
    EXPECT_FALSE(file_exists(donefile)) << how;
  }
}

// ... and its other children are joined.
TEST_P(ProcessTest, NonDaemonChildrenJoinedAtExit) {
  for (int how : {0, 1, 2}) {
    const std::string pidfile = dir_ / ("pid" + std::to_string(how));
    const std::string donefile = dir_ / ("done" + std::to_string(how));
    auto p = ctx().Process(start_grandchild_then_exit, method(), pidfile, donefile, false, how);
    p.start();
    ASSERT_TRUE(p.join(kLong)) << how;
    EXPECT_EQ(p.exitcode(), 0) << how;
    EXPECT_TRUE(file_exists(donefile)) << "the child exited before its non-daemonic child ended; how=" << how;
    auto pid_text = read_file(pidfile);
    ASSERT_TRUE(pid_text.has_value()) << how;
    EXPECT_TRUE(wait_process_ended(std::stoi(*pid_text), 5s)) << how;
  }
}

// _TestSubclassingProcess.test_subclassing
TEST_P(ProcessTest, Subclassing) {
  UpperCaser u(ctx(), "hello world", dir_ / "out");
  u.daemon(true);
  std::string name = u.name();
  EXPECT_TRUE(std::regex_match(name, std::regex("^UpperCaser-[0-9]+$"))) << name;
  EXPECT_EQ(u.start_method(), method());
  u.start();
  ASSERT_TRUE(u.join(kLong));
  EXPECT_EQ(u.exitcode(), 0);
  EXPECT_EQ(read_file(dir_ / "out"), "HELLO WORLD\n" + name);
  std::ostringstream repr;
  repr << u;
  EXPECT_THAT(repr.str(), HasSubstr("<UpperCaser name='" + name + "'"));

  ExitSeven e(ctx());
  e.start();
  ASSERT_TRUE(e.join(kLong));
  EXPECT_EQ(e.exitcode(), 7);
}

// A subclass that is not registered runs under fork only; elsewhere start() says why.
TEST_P(ProcessTest, UnregisteredSubclass) {
  NotRegistered p(ctx());
  if (method() == "fork") {
    p.start();
    ASSERT_TRUE(p.join(kLong));
    EXPECT_EQ(p.exitcode(), 6);
    return;
  }
  const auto before = mp::active_children().size();
  try {
    p.start();
    ADD_FAILURE() << "start() accepted an unregistered subclass under " << method();
    p.join(kLong);
  } catch (const mp::ProcessError& e) {
    EXPECT_THAT(e.what(), HasSubstr("'" + method() + "'"));
    EXPECT_THAT(e.what(), HasSubstr("MP_TASK_TYPE"));
  }
  EXPECT_EQ(mp::active_children().size(), before);
  EXPECT_EQ(p.pid(), std::nullopt);
}

// A target that cannot travel: under spawn/forkserver start() refuses it naming the start method,
// before any process is created; under fork the same target just works.
TEST_P(ProcessTest, TargetThatCannotTravel) {
  int captured = 9;  // not const: a const int would need no capture at all
  const auto before = mp::active_children().size();
  const int children_before = count_children();
  auto p = ctx().Process([captured] { mp::sys_exit(captured); });
  int value = 1;
  auto q = ctx().Process(takes_pointer, &value);
  if (method() == "fork") {
    p.start();
    q.start();
    ASSERT_TRUE(p.join(kLong));
    ASSERT_TRUE(q.join(kLong));
    EXPECT_EQ(p.exitcode(), 9);
    EXPECT_EQ(q.exitcode(), 0);
    return;
  }
  for (auto* proc : {&p, &q}) {
    try {
      proc->start();
      ADD_FAILURE() << "start() accepted a target that cannot travel under " << method();
      proc->join(kLong);
    } catch (const mp::ProcessError& e) {
      EXPECT_THAT(e.what(), HasSubstr("'" + method() + "'"));
    }
    EXPECT_EQ(proc->pid(), std::nullopt);
    EXPECT_FALSE(proc->is_alive());
    EXPECT_EQ(proc->exitcode(), std::nullopt);
  }
  EXPECT_EQ(mp::active_children().size(), before);
  EXPECT_EQ(count_children(), children_before);
}

// util.register_after_fork: the callbacks run in each child, not in the parent.
TEST_P(ProcessTest, RegisterAfterFork) {
  EXPECT_EQ(g_after_fork_runs, 0);  // never in the parent
  int expected_runtime = 0;
  if (method() == "fork") {
    // Registered at run time: only a forked copy of this process can know it.
    mp::register_after_fork([] { g_runtime_after_fork = 1; });
    expected_runtime = 1;
  }
  auto p = ctx().Process(check_after_fork, 1, expected_runtime);
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(g_after_fork_runs, 0);
  EXPECT_EQ(g_runtime_after_fork, 0);
}

// log_to_stderr(info): the child logs its start and exit under its own name.
TEST_P(ProcessTest, LogToStderr) {
  std::string err;
  std::string name;
  {
    StderrCapture cap(method(), dir_ / "stderr");
    mp::log_to_stderr(mp::LogLevel::info);
    auto p = ctx().Process(exit_with, 4);
    name = p.name();
    p.start();
    bool joined = p.join(kLong);
    mp::get_logger().attach_stderr(false);
    mp::get_logger().set_level(mp::LogLevel::notset);
    err = cap.finish();
    ASSERT_TRUE(joined);
    EXPECT_EQ(p.exitcode(), 4);
  }
  EXPECT_THAT(err, HasSubstr("[INFO/" + name + "] child process calling self.run()\n"));
  EXPECT_THAT(err, HasSubstr("[INFO/" + name + "] process exiting with exitcode 4\n"));
}

// get_logger() is silent by default, in the parent and in children.
TEST_P(ProcessTest, LoggerSilentByDefault) {
  mp::Logger& log = mp::get_logger();
  EXPECT_FALSE(log.has_stderr_handler());
  EXPECT_FALSE(log.enabled_for(mp::LogLevel::critical));
  StderrCapture cap(method(), dir_ / "stderr");
  log.critical("must not appear");
  log.info("must not appear");
  auto p = ctx().Process(return_normally);
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(cap.finish(), "");
}

#if defined(_WIN32)
namespace {
// In the child: for each value, whether it names a handle here whose signalled state is the one
// the parent gave its event. An inherited event matches at every value; an unrelated handle of
// the child's own, by chance at some value, matches the whole pattern only by a miracle.
void report_inherited_events(std::string path, std::vector<std::uint64_t> values, std::vector<int> signalled) {
  std::string out;
  for (std::size_t i = 0; i < values.size(); ++i) {
    HANDLE h = reinterpret_cast<HANDLE>(static_cast<std::uintptr_t>(values[i]));
    DWORD flags = 0;
    bool match = false;
    if (GetHandleInformation(h, &flags)) {
      DWORD r = WaitForSingleObject(h, 0);
      match = signalled[i] ? r == WAIT_OBJECT_0 : r == WAIT_TIMEOUT;
    }
    out += match ? '1' : '0';
  }
  write_file(path, out);
}
}  // namespace
#endif

// Windows' half of the next test: handles the application made inheritable do not cross into a
// spawned child, because CreateProcessW is given the child's own in an explicit list.
TEST_P(ProcessTest, UnlistedInheritableHandlesStayOut) {
#if defined(_WIN32)
  std::vector<HANDLE> events;
  std::vector<std::uint64_t> values;
  std::vector<int> signalled;
  for (int i = 0; i < 16; ++i) {
    SECURITY_ATTRIBUTES inheritable{sizeof(SECURITY_ATTRIBUTES), nullptr, TRUE};
    HANDLE e = CreateEventW(&inheritable, TRUE, FALSE, nullptr);
    ASSERT_NE(e, nullptr);
    if (i % 3 == 0) SetEvent(e);
    events.push_back(e);
    values.push_back(reinterpret_cast<std::uintptr_t>(e));
    signalled.push_back(i % 3 == 0 ? 1 : 0);
  }
  // The check itself can fail: the same process sees all of them.
  std::string here;
  for (std::size_t i = 0; i < events.size(); ++i) {
    DWORD r = WaitForSingleObject(events[i], 0);
    here += (signalled[i] ? r == WAIT_OBJECT_0 : r == WAIT_TIMEOUT) ? '1' : '0';
  }
  ASSERT_EQ(here, std::string(16, '1'));
  auto p = ctx().Process(report_inherited_events, dir_ / "events", values, signalled);
  p.start();
  bool joined = p.join(kLong);
  for (HANDLE e : events) CloseHandle(e);
  ASSERT_TRUE(joined);
  ASSERT_EQ(p.exitcode(), 0);
  std::string seen = read_file(dir_ / "events").value_or("");
  ASSERT_EQ(seen.size(), 16u);
  EXPECT_NE(seen, std::string(16, '1')) << "the child holds the parent's inheritable events";
#else
  GTEST_SKIP() << "POSIX: OnlyNeededHandlesInherited checks this with the child's descriptor list";
#endif
}

// Only the child's own handles cross into a spawned or forkserver child, never descriptors the
// application left inheritable. (Under fork every descriptor is inherited by design.)
TEST_P(ProcessTest, OnlyNeededHandlesInherited) {
  MP_SKIP_ON_WINDOWS("lists the child's numbered descriptors through /proc/self/fd");
#if !defined(_WIN32)
  int devnull = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(devnull, 0);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);  // deliberately without O_CLOEXEC
  struct stat st {};
  ASSERT_EQ(::fstat(fds[0], &st), 0);
  const std::string leaked_pipe = "pipe:[" + std::to_string(st.st_ino) + "]";

  auto p = ctx().Process(report_fds, dir_ / "fds");
  p.start();
  bool joined = p.join(kLong);
  ::close(devnull);
  ::close(fds[0]);
  ::close(fds[1]);
  ASSERT_TRUE(joined);
  ASSERT_EQ(p.exitcode(), 0);

  std::map<int, std::string> open;
  std::istringstream in(read_file(dir_ / "fds").value_or(""));
  for (std::string line; std::getline(in, line);) {
    auto sp = line.find(' ');
    open[std::stoi(line.substr(0, sp))] = line.substr(sp + 1);
  }
  std::string listing;
  for (auto& [fd, target] : open) listing += std::to_string(fd) + " -> " + target + "\n";

  if (method() == "fork") {
    EXPECT_EQ(open.count(devnull), 1u) << listing;
    EXPECT_EQ(open[devnull], "/dev/null") << listing;
    return;
  }
  for (auto& [fd, target] : open) {
    if (fd <= 2) continue;
    EXPECT_NE(target, "/dev/null") << "fd " << fd << " leaked into the child\n" << listing;
    EXPECT_NE(target, leaked_pipe) << "fd " << fd << " leaked into the child\n" << listing;
  }
  if (method() == "spawn") {
    // 0, 1, 2, the library's control (3) and status (4) handles, and the resource tracker's
    // pipe (5): nothing else.
    for (auto& [fd, target] : open) EXPECT_LE(fd, 5) << listing;
    EXPECT_EQ(open.count(3), 1u) << listing;
    EXPECT_EQ(open.count(4), 1u) << listing;
    EXPECT_EQ(open.count(5), 1u) << listing;
  } else {
    // A forkserver child: 0, 1, 2, its control handle (its status goes through the server) and
    // the resource tracker's pipe.
    int extra = 0;
    for (auto& [fd, target] : open) extra += fd > 2;
    EXPECT_LE(extra, 2) << listing;
  }
#endif
}

// 2,000 start-join cycles leave the parent's descriptors and child processes as they were.
// MP_TEST_SCALE (default 1.0) scales the count, at least 50: sanitizer builds set it low because
// every cycle there is much slower.
TEST_P(ProcessTest, NoLeaksOverManyCycles) {
  // (Under Wine a process start costs ~70 ms, against ~0.3 ms here: fewer cycles there.)
  const int cycles = std::max(50, static_cast<int>((kWindows ? 200 : 2000) * test_scale()));
  {
    auto warm = ctx().Process(return_normally);  // starts the forkserver once, before measuring
    warm.start();
    ASSERT_TRUE(warm.join(kLong));
  }
  const int fds_before = count_open_fds();
  const int children_before = count_children();
  ASSERT_GT(fds_before, 0);
  for (int i = 0; i < cycles; ++i) {
    auto p = ctx().Process(exit_with, i % 7);
    p.start();
    ASSERT_TRUE(p.join(kLong)) << "cycle " << i;
    ASSERT_EQ(p.exitcode(), i % 7) << "cycle " << i;
  }
  EXPECT_EQ(count_open_fds(), fds_before);
  EXPECT_EQ(count_children(), children_before);
  EXPECT_TRUE(mp::active_children().empty());
}

// A Process with no target runs nothing and exits 0.
TEST_P(ProcessTest, NoTarget) {
  mp::Process p(mp::ProcessOptions{.name = {}, .daemon = {}, .context = &ctx()});
  EXPECT_EQ(p.start_method(), method());
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

// Process is move-only: the moved-to object owns the child; the moved-from one is unusable.
TEST_P(ProcessTest, MoveOnly) {
  static_assert(!std::is_copy_constructible_v<mp::Process>);
  auto p = ctx().Process(exit_with, 2);
  const std::string name = p.name();
  mp::Process q = std::move(p);
  EXPECT_THROW(p.start(), mp::ValueError);
  EXPECT_THROW((void)p.name(), mp::ValueError);
  EXPECT_EQ(q.name(), name);
  q.start();
  mp::Process r;
  r = std::move(q);
  ASSERT_TRUE(r.join(kLong));
  EXPECT_EQ(r.exitcode(), 2);
  EXPECT_EQ(r.name(), name);
}

// active_children() hands out handles to the same children: a child whose Process object is gone
// can still be waited for through them.
TEST_P(ProcessTest, ActiveChildrenHandles) {
  int pid = 0;
  std::string name;
  {
    auto p = ctx().Process(wait_for_go, dir_ / "go", 30.0);
    p.start();
    pid = *p.pid();
    name = p.name();
  }
  std::vector<mp::Process> kids = mp::active_children();
  auto it = std::find_if(kids.begin(), kids.end(), [&](const mp::Process& k) { return k.pid() == pid; });
  ASSERT_NE(it, kids.end()) << "a started child left active_children() when its Process object went away";
  EXPECT_EQ(it->name(), name);
  EXPECT_TRUE(it->is_alive());
  EXPECT_FALSE(it->join(0s));
  write_file(dir_ / "go", "");
  ASSERT_TRUE(it->join(kLong));
  EXPECT_EQ(it->exitcode(), 0);
  EXPECT_EQ(pids_of(mp::active_children()).count(pid), 0u);
}

// An argument of a megabyte arrives intact (more than a pipe or socket buffer holds).
TEST_P(ProcessTest, LargeArgument) {
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  auto p = ctx().Process(check_big, big, big.size());
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

// A child that exec()s another program is still waited for, and its exit code is that program's.
TEST_P(ProcessTest, ExecInChild) {
  MP_SKIP_ON_WINDOWS("exec() replacing the child's program is POSIX's (and the script is /bin/sh's)");
  auto p = ctx().Process(exec_shell, std::string("sleep 0.2; exit 7"));
  auto t0 = Clock::now();
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_GE(elapsed_since(t0), 0.15);
  EXPECT_EQ(p.exitcode(), 7);
  EXPECT_FALSE(p.is_alive());
}

// Known limitation, kept out of the default run: under fork and spawn the sentinel is a
// close-on-exec pipe, so after the child exec()s, join(timeout) sees it fire and then reaps with a
// blocking waitpid (as CPython's popen_fork.wait does), overrunning the timeout until the program
// ends. Run with --gtest_also_run_disabled_tests to see it.
TEST_P(ProcessTest, JoinTimeoutHonouredAfterExec) {
  MP_SKIP_ON_WINDOWS("exec() replacing the child's program is POSIX's (and the script is /bin/sh's)");
  auto p = ctx().Process(exec_shell, std::string("sleep 2; exit 7"));
  p.start();
  std::this_thread::sleep_for(0.1s);  // let it exec
  auto t0 = Clock::now();
  EXPECT_FALSE(p.join(0.05s));
  EXPECT_LT(elapsed_since(t0), 1.0) << "join(0.05s) blocked until the exec'd program ended";
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 7);
}

// Several threads start and join processes at once.
TEST_P(ProcessTest, ConcurrentStarts) {
  MP_SKIP_THREADED_FORK_UNDER_ASAN(GetParam());
  constexpr int kThreads = 4;
  constexpr int kEach = 8;
  std::atomic<int> failures{0};
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < kEach; ++i) {
          auto p = ctx().Process(exit_with, t * kEach + i);
          p.start();
          if (!p.join(kLong) || p.exitcode() != t * kEach + i) {
            ++failures;
            errors[static_cast<std::size_t>(t)] += "bad exit code " + std::to_string(p.exitcode().value_or(-1000)) + "; ";
          }
        }
      } catch (const std::exception& e) {
        ++failures;
        errors[static_cast<std::size_t>(t)] += e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  std::string all;
  for (auto& e : errors) all += e;
  EXPECT_EQ(failures.load(), 0) << all;
  EXPECT_TRUE(mp::active_children().empty());
}

// Under fork a child holds copies of its parent's Process objects; it may not use them (CPython's
// "can only test/join/start a child process" assertions).
TEST_P(ProcessTest, ForkedCopyOfParentsProcess) {
  if (method() != "fork") GTEST_SKIP() << "only a forked child holds copies of the parent's objects";
  auto running = ctx().Process(wait_for_go, dir_ / "go", 30.0);
  running.start();
  auto unstarted = ctx().Process(return_normally);
  mp::Process* r = &running;
  mp::Process* u = &unstarted;
  auto p = ctx().Process([r, u] {
    int code = 0;
    try {
      (void)r->is_alive();
      code |= 1;
    } catch (const mp::AssertionError&) {
    }
    try {
      (void)r->join(0s);
      code |= 2;
    } catch (const mp::AssertionError&) {
    }
    try {
      u->start();
      code |= 4;
    } catch (const mp::AssertionError&) {
    }
    mp::sys_exit(code);
  });
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  write_file(dir_ / "go", "");
  ASSERT_TRUE(running.join(kLong));
  EXPECT_EQ(running.exitcode(), 0);
}

// TestForkserver / test_forkserver_sigint, test_forkserver_sigkill: if the server dies, running
// children finish and new ones start from a fresh server.
class ForkServerDeath : public ::testing::TestWithParam<int> {};

INSTANTIATE_TEST_SUITE_P(Signals, ForkServerDeath, ::testing::Values(SIGINT, kSigKill),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(info.param == SIGINT ? "SIGINT" : "SIGKILL");
                         });

TEST_P(ForkServerDeath, ServerIsRestarted) {
  MP_SKIP_UNLESS_METHOD("forkserver");
  mp::Context& ctx = mp::get_context("forkserver");
  TempDir dir;
  {
    auto warm = ctx.Process(return_normally);
    warm.start();
    ASSERT_TRUE(warm.join(kLong));
  }
  const int server = find_forkserver_pid();
  ASSERT_GT(server, 0);

  auto proc = ctx.Process(sleep_then_write, dir / "evt", 0.5);
  proc.start();
  mp::platform::send_signal(server, GetParam());
  ASSERT_TRUE(wait_process_ended(server));

  auto proc2 = ctx.Process(sleep_then_write, dir / "evt2", 0.0);
  proc2.start();
  ASSERT_TRUE(proc2.join(kLong));
  EXPECT_EQ(proc2.exitcode(), 0);
  EXPECT_TRUE(file_exists(dir / "evt2"));
  const int new_server = find_forkserver_pid();
  EXPECT_GT(new_server, 0);
  EXPECT_NE(new_server, server);

  ASSERT_TRUE(proc.join(kLong));
  EXPECT_TRUE(wait_for_file(dir / "evt", 10s));
  // The server that would report the exit code is gone: 255 when it cannot tell (as CPython).
  EXPECT_TRUE(proc.exitcode() == 0 || proc.exitcode() == 255) << proc.exitcode().value_or(-1000);
}

// cpu_count() and process_cpu_count()
TEST(ProcessFunctions, CpuCount) {
  int n = mp::cpu_count();
  EXPECT_GE(n, 1);
  int m = mp::process_cpu_count();
  EXPECT_GE(m, 1);
  EXPECT_LE(m, n);
}
