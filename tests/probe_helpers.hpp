// Running tracker_probe (a program with its own process tree and resource tracker) from a test,
// and watching /dev/shm: for test_tracker.cpp and test_shared_memory.cpp.
//
// Windows runs no resource tracker (the OS frees a named object with its last handle), so every
// test that starts a Probe skips there; Probe exists there only so those tests compile.
#pragma once
#include "test_helpers.hpp"

#include "platform/process.hpp"
#include "platform/shm.hpp"

#include <csignal>
#include <filesystem>
#include <map>
#include <sstream>
#include <stdexcept>
#if !defined(_WIN32)
#include <poll.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;
#endif

namespace mp_test {

#if defined(_WIN32)
struct Probe {
  int pid = -1;
  std::string err_path;
  Probe(const std::vector<std::string>&, const std::string& stderr_file) : err_path(stderr_file) {
    throw std::logic_error("tracker_probe is not run on Windows: there is no resource tracker there");
  }
  std::vector<std::string> read_until_ready() { return {}; }
  int wait_exit() { return -1; }
  std::string err() const { return read_file(err_path).value_or(""); }
};
#else

struct Probe {
  int pid = -1;
  int out = -1;  // its standard output
  std::string err_path;

  Probe(const std::vector<std::string>& args, const std::string& stderr_file) : err_path(stderr_file) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    std::vector<std::string> all = {TRACKER_PROBE};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = ::posix_spawn(&pid, TRACKER_PROBE, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    if (rc != 0) throw std::runtime_error("posix_spawn tracker_probe");
    out = fds[0];
  }
  ~Probe() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (out >= 0) ::close(out);
  }
  // Lines of its output up to "READY" (or its end).
  std::vector<std::string> read_until_ready() {
    std::string text;
    char buf[4096];
    auto deadline = Clock::now() + kLong;
    while (Clock::now() < deadline && text.find("READY\n") == std::string::npos) {
      pollfd p{out, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      ssize_t n = ::read(out, buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<std::size_t>(n));
    }
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }
  int wait_exit() {
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return status;
  }
  std::string err() const { return read_file(err_path).value_or(""); }
};
#endif

// The tests watch named objects as files in /dev/shm (glibc's layout), however the library was
// built: also in the portable build, which does not look there itself. Where there is no
// /dev/shm (macOS) a test that watches skips.
inline bool can_watch_dev_shm() {
  std::error_code ec;
  return std::filesystem::exists("/dev/shm", ec);
}
inline std::string shm_file(const std::string& type, const std::string& name) {
  return "/dev/shm/" + std::string(type == "semaphore" ? "sem." : "") + name.substr(1);
}
inline bool exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

// Whether the named shared-memory segment `name` ("mp-..." or "/mp-...") exists: a file in
// /dev/shm on POSIX; on Windows, whether a mapping of that name can be opened (it exists while
// any process holds a handle or view of it).
inline bool segment_exists(const std::string& name) {
#if defined(_WIN32)
  try {
    mp::platform::SharedMemorySegment::open(name.empty() || name[0] == '/' ? name : "/" + name);
    return true;
  } catch (const std::exception&) {
    return false;
  }
#else
  return exists("/dev/shm/" + (name.empty() || name[0] != '/' ? name : name.substr(1)));
#endif
}

// The names ("/mp-...") of the library's semaphores and shared memory in /dev/shm.
inline std::vector<std::string> dev_shm_names() {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator("/dev/shm")) {
    std::string file = e.path().filename().string();
    if (file.rfind("sem.", 0) == 0) file.erase(0, 4);
    if (file.rfind("mp-", 0) == 0) names.push_back("/" + file);
  }
  return names;
}

// Waits until `pred` holds; the seconds it took, or a negative number after `limit`.
template <class P>
double wait_until(P pred, double limit) {
  auto t0 = Clock::now();
  while (!pred()) {
    if (elapsed_since(t0) > limit) return -1;
    std::this_thread::sleep_for(5ms);
  }
  return elapsed_since(t0);
}

// Makes this process the reaper of its descendants' orphans while it lives (rather than init,
// which in a container may never reap them), so a killed probe's processes can be reaped and be
// gone for every observer - also for one without /proc, which cannot tell a zombie from a live
// process (mp-tracker in the portable build).
class AdoptOrphans {
 public:
#if defined(_WIN32)
  // Windows has no zombies: an ended process is gone for every observer.
  AdoptOrphans() = default;
  AdoptOrphans(const AdoptOrphans&) = delete;
  AdoptOrphans& operator=(const AdoptOrphans&) = delete;
  static bool wait_gone(int pid, double limit) {
    return wait_until([pid] { return process_ended(pid); }, limit) >= 0;
  }
#else
  AdoptOrphans() { ::prctl(PR_SET_CHILD_SUBREAPER, 1L, 0L, 0L, 0L); }
  ~AdoptOrphans() { ::prctl(PR_SET_CHILD_SUBREAPER, 0L, 0L, 0L, 0L); }
  AdoptOrphans(const AdoptOrphans&) = delete;
  AdoptOrphans& operator=(const AdoptOrphans&) = delete;
  // Waits up to `limit` seconds until `pid` no longer exists, reaping it once it is ours.
  static bool wait_gone(int pid, double limit) {
    return wait_until(
               [pid] {
                 ::waitpid(pid, nullptr, WNOHANG);
                 return ::kill(pid, 0) < 0 && errno == ESRCH;
               },
               limit) >= 0;
  }
#endif
};

struct LeakedTree {
  std::map<std::string, int> pids;  // PID, CHILD, TRACKER
  std::vector<std::pair<std::string, std::string>> objects;  // (type, name)
};

inline LeakedTree parse_tree(const std::vector<std::string>& lines) {
  LeakedTree t;
  for (auto& l : lines) {
    std::istringstream in(l);
    std::string key;
    in >> key;
    if (key == "NAME") {
      std::string type, name;
      in >> type >> name;
      t.objects.emplace_back(type, name);
    } else if (key == "PID" || key == "CHILD" || key == "TRACKER") {
      in >> t.pids[key];
    }
  }
  return t;
}

}  // namespace mp_test
