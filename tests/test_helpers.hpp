// Helpers shared by the Process and context tests: temp dirs, files written atomically (the way
// children report back, since Connection/Queue do not exist yet), fd and child-process counting
// through /proc, stderr capture, and finding the forkserver process.
#pragma once

#include <mp/mp.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#include <tlhelp32.h>
#include <fcntl.h>
#include <io.h>
#else
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include "test_platform.hpp"
#include "platform/process.hpp"

namespace mp_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// gcc 12's AddressSanitizer runtime (libasan.so.8) has no fork() interceptor: it does not hold its
// allocator's locks across fork(), so a child forked while another thread of the parent is inside
// malloc can deadlock in its own first allocation. Cases that fork from a parent whose other
// threads are busy (concurrent starts; a pool replacing workers from its monitor thread) skip their
// fork variant under ASan, saying so; their spawn and forkserver variants still run there.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAsanForkWithThreadsUnsafe = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAsanForkWithThreadsUnsafe = true;
#else
inline constexpr bool kAsanForkWithThreadsUnsafe = false;
#endif
#else
inline constexpr bool kAsanForkWithThreadsUnsafe = false;
#endif
#define MP_SKIP_THREADED_FORK_UNDER_ASAN(method)                                                      \
  if (::mp_test::kAsanForkWithThreadsUnsafe && std::string(method) == "fork")                         \
  GTEST_SKIP() << "ASan (gcc 12's libasan) does not lock its allocator across fork(): a fork from a " \
                  "busy multithreaded parent can deadlock the child; spawn/forkserver variants run"

// Generous bound for anything that should happen "soon": a failure never hangs the suite.
inline constexpr auto kLong = std::chrono::seconds(30);

inline double elapsed_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

class TempDir {
 public:
  TempDir() {
    auto base = std::filesystem::temp_directory_path();
    for (int attempt = 0;; ++attempt) {
      auto p = base / ("mp_test_" + std::to_string(mp::platform::current_pid()) + "_" +
                       std::to_string(Clock::now().time_since_epoch().count() % 1000000007) + "_" + std::to_string(attempt));
      std::error_code ec;
      if (std::filesystem::create_directory(p, ec)) {
        path_ = p.string();
        return;
      }
      if (attempt > 100) throw std::runtime_error("TempDir: cannot create a directory in " + base.string());
    }
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes `text` to `path` atomically (a temporary file renamed into place), so a reader polling
// for the file never sees it half-written.
inline bool write_file(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp." + std::to_string(mp::platform::current_pid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return false;
    out << text;
    if (!out.flush()) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

// One append write: lines of several processes never interleave (O_APPEND; FILE_APPEND_DATA).
inline bool append_line(const std::string& path, const std::string& line) {
  std::string text = line + "\n";
#if defined(_WIN32)
  HANDLE h = CreateFileA(path.c_str(), FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                         OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE) return false;
  DWORD done = 0;
  bool ok = WriteFile(h, text.data(), static_cast<DWORD>(text.size()), &done, nullptr) && done == text.size();
  CloseHandle(h);
  return ok;
#else
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
#endif
}

inline std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
#if defined(_WIN32)
  // A file another process has just renamed into place can refuse to open for a moment (a
  // sharing violation): retry briefly while it exists.
  for (int i = 0; !in && i < 100 && std::filesystem::exists(path); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    in.clear();
    in.open(path, std::ios::binary);
  }
#endif
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

inline bool wait_for_file(const std::string& path, std::chrono::duration<double> timeout = kLong) {
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
  while (!file_exists(path)) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

inline std::string bytes_to_string(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// ---- processes and handles -------------------------------------------------------------------

// Open descriptors (handles, on Windows) of this process.
inline int count_open_fds() {
#if defined(_WIN32)
  // GetProcessHandleCount would do, but Wine answers 0: probe the handle values instead (they
  // are multiples of 4, allocated from the bottom).
  int n = 0;
  for (std::uintptr_t v = 4; v < 65536; v += 4) {
    DWORD flags = 0;
    if (GetHandleInformation(reinterpret_cast<HANDLE>(v), &flags)) ++n;
  }
  return n;
#else
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int self = ::dirfd(d);
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    if (std::atoi(e->d_name) == self) continue;
    ++n;
  }
  ::closedir(d);
  return n;
#endif
}

struct ProcStat {
  char state = '?';
  int ppid = 0;
};

// State and parent of `pid` (/proc/<pid>/stat; a process snapshot on Windows, where a process
// that has ended is gone); nullopt once the process is gone.
inline std::optional<ProcStat> proc_stat(int pid) {
#if defined(_WIN32)
  HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
  if (snap == INVALID_HANDLE_VALUE) return std::nullopt;
  PROCESSENTRY32 e{};
  e.dwSize = sizeof e;
  std::optional<ProcStat> out;
  for (BOOL ok = Process32First(snap, &e); ok; ok = Process32Next(snap, &e)) {
    if (static_cast<int>(e.th32ProcessID) == pid) {
      if (mp::platform::process_exists(pid)) out = ProcStat{'R', static_cast<int>(e.th32ParentProcessID)};
      break;
    }
  }
  CloseHandle(snap);
  return out;
#else
  auto text = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!text) return std::nullopt;
  auto close = text->rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos || close + 4 >= text->size()) return std::nullopt;
  ProcStat s;
  s.state = (*text)[close + 2];
  s.ppid = std::atoi(text->c_str() + close + 4);
  return s;
#endif
}

// The pids whose parent is this process (zombies included).
inline std::vector<int> child_pids() {
  std::vector<int> out;
  const int me = mp::platform::current_pid();
#if defined(_WIN32)
  HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
  if (snap == INVALID_HANDLE_VALUE) return out;
  PROCESSENTRY32 e{};
  e.dwSize = sizeof e;
  for (BOOL ok = Process32First(snap, &e); ok; ok = Process32Next(snap, &e)) {
    int pid = static_cast<int>(e.th32ProcessID);
    if (static_cast<int>(e.th32ParentProcessID) == me && mp::platform::process_exists(pid)) out.push_back(pid);
  }
  CloseHandle(snap);
#else
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0') continue;
    auto st = proc_stat(static_cast<int>(pid));
    if (st && st->ppid == me) out.push_back(static_cast<int>(pid));
  }
  ::closedir(d);
#endif
  return out;
}

inline int count_children() { return static_cast<int>(child_pids().size()); }

// True once `pid` has ended: gone entirely or a zombie waiting to be reaped.
inline bool process_ended(int pid) {
  if (!mp::platform::process_exists(pid)) return true;
  auto st = proc_stat(pid);
  return !st || st->state == 'Z' || st->state == 'X';
}

inline bool wait_process_ended(int pid, std::chrono::duration<double> timeout = kLong) {
  auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(timeout);
  while (!process_ended(pid)) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// The forkserver this process started (a child run with --mp-forkserver), or -1.
inline int find_forkserver_pid() {
#if defined(_WIN32)
  return -1;  // no forkserver on Windows
#else
  for (int pid : child_pids()) {
    auto cmd = read_file("/proc/" + std::to_string(pid) + "/cmdline");
    auto st = proc_stat(pid);
    if (cmd && st && st->state != 'Z' && cmd->find("--mp-forkserver") != std::string::npos) return pid;
  }
  return -1;
#endif
}

// Kills the running forkserver (if any) and waits until it has died, so the next forkserver start
// starts a fresh one, which inherits this process's stdio as it is then.
inline void restart_forkserver() {
  int pid = find_forkserver_pid();
  if (pid > 0) {
    kill_pid(pid);
    wait_process_ended(pid);
  }
}

// Redirects this process's fd 2 to a file while alive, so children started meanwhile write their
// stderr there. A forkserver child inherits the *server's* stderr (as in CPython), so under that
// method the server is restarted inside the capture, and again after it.
class StderrCapture {
 public:
  StderrCapture(std::string method, std::string path) : method_(std::move(method)), path_(std::move(path)) {
    if (method_ == "forkserver") restart_forkserver();
    std::fflush(stderr);
#if defined(_WIN32)
    saved_ = ::_dup(2);
    int fd = ::_open(path_.c_str(), _O_WRONLY | _O_CREAT | _O_TRUNC | _O_BINARY | _O_NOINHERIT, 0600);
    if (saved_ < 0 || fd < 0) throw std::runtime_error("StderrCapture: cannot redirect fd 2");
    ::_dup2(fd, 2);
    ::_close(fd);
    // Children get the standard error handle, not the C runtime's descriptor 2.
    SetStdHandle(STD_ERROR_HANDLE, reinterpret_cast<HANDLE>(::_get_osfhandle(2)));
#else
    saved_ = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (saved_ < 0 || fd < 0) throw std::runtime_error("StderrCapture: cannot redirect fd 2");
    ::dup2(fd, 2);
    ::close(fd);
#endif
  }
  ~StderrCapture() { finish(); }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;

  // Restores fd 2 and returns what was written meanwhile.
  std::string finish() {
    if (saved_ >= 0) {
      std::fflush(stderr);
#if defined(_WIN32)
      ::_dup2(saved_, 2);
      ::_close(saved_);
      SetStdHandle(STD_ERROR_HANDLE, reinterpret_cast<HANDLE>(::_get_osfhandle(2)));
#else
      ::dup2(saved_, 2);
      ::close(saved_);
#endif
      saved_ = -1;
      if (method_ == "forkserver") restart_forkserver();
    }
    return read_file(path_).value_or("");
  }

 private:
  std::string method_;
  std::string path_;
  int saved_ = -1;
};

inline std::set<int> pids_of(const std::vector<mp::Process>& ps) {
  std::set<int> out;
  for (const auto& p : ps) {
    if (auto pid = p.pid()) out.insert(*pid);
  }
  return out;
}

inline double test_scale() {
  const char* s = std::getenv("MP_TEST_SCALE");
  if (s == nullptr || *s == '\0') return 1.0;
  double v = std::atof(s);
  return v > 0 ? v : 1.0;
}

// Started children; any still alive when this goes out of scope (a failed test) are killed, so a
// failing test never leaves processes behind. start() takes what ctx.Process() takes; the
// reference it returns is valid until the next start().
class Children {
 public:
  Children() = default;
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children() {
    for (auto& p : procs_) {
      try {
        if (p.is_alive()) {
          p.kill();
          p.join(mp::Seconds(5));
        }
      } catch (...) {
      }
    }
  }
  template <class... A>
  mp::Process& start(mp::Context& ctx, A&&... args) {
    return keep(ctx.Process(std::forward<A>(args)...));
  }
  // With options (a name, daemon, ...): `kids.start(ctx, {}, target, args...)` works too.
  template <class... A>
  mp::Process& start(mp::Context& ctx, mp::ProcessOptions options, A&&... args) {
    return keep(ctx.Process(std::move(options), std::forward<A>(args)...));
  }
  // Joins every child (bounded) and expects each to have exited with 0.
  void join_all_ok(mp::Seconds timeout = mp::Seconds(30)) {
    for (auto& p : procs_) {
      EXPECT_TRUE(p.join(timeout)) << "a child did not finish";
      EXPECT_EQ(p.exitcode(), 0);
    }
  }
  std::vector<mp::Process>& procs() { return procs_; }

 private:
  mp::Process& keep(mp::Process p) {
    p.start();
    procs_.push_back(std::move(p));
    return procs_.back();
  }
  std::vector<mp::Process> procs_;
};

}  // namespace mp_test
