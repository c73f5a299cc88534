#include "platform/process.hpp"
#include "platform/error.hpp"
#include "platform/pipe.hpp"
#include "mp_config.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <pthread.h>
#include <spawn.h>
#include <sys/wait.h>
#if MP_HAVE_PIDFD
#include <sys/syscall.h>
#endif
#include <unistd.h>
#include <thread>
#if MP_HAVE_SCHED_GETAFFINITY
#include <sched.h>
#endif
#if MP_HAVE_NSGETARGV
#include <crt_externs.h>
#endif

extern char** environ;

namespace mp::platform {

const int signal_term = SIGTERM;
const int signal_kill = SIGKILL;

int current_pid() noexcept { return static_cast<int>(::getpid()); }
int parent_pid() noexcept { return static_cast<int>(::getppid()); }

int fork_process() {
  pid_t pid = ::fork();
  if (pid < 0) throw_last_error("fork");
  return static_cast<int>(pid);
}

namespace {
struct FileActions {
  posix_spawn_file_actions_t a;
  FileActions() {
    if (int e = posix_spawn_file_actions_init(&a)) throw std::system_error(e, std::system_category(), "posix_spawn");
  }
  ~FileActions() { posix_spawn_file_actions_destroy(&a); }
  void check(int e) {
    if (e) throw std::system_error(e, std::system_category(), "posix_spawn_file_actions");
  }
};
}  // namespace

#if !MP_HAVE_CLOSEFROM
namespace {
// The open descriptors >= `lowest`, as CPython finds them on macOS: listed in /dev/fd (macOS,
// FreeBSD's fdescfs; on Linux a link to /proc). Else one fcntl per number up to the descriptor
// limit: a system call each, 3 ms a spawn at this machine's limit of 20000.
std::vector<int> open_descriptors_from(int lowest) {
  std::vector<int> fds;
  if (DIR* d = ::opendir("/dev/fd")) {
    const int own = ::dirfd(d);
    bool saw_own = false;
    while (dirent* e = ::readdir(d)) {
      char* end = nullptr;
      long fd = std::strtol(e->d_name, &end, 10);
      if (end == e->d_name || *end != '\0') continue;
      if (fd == own) saw_own = true;
      else if (fd >= lowest && fd <= INT_MAX) fds.push_back(static_cast<int>(fd));
    }
    ::closedir(d);
    // A static /dev/fd (FreeBSD without fdescfs) lists 0-2 only: trust a listing that has the
    // directory's own descriptor.
    if (saw_own) return fds;
    fds.clear();
  }
  long maxfd = ::sysconf(_SC_OPEN_MAX);
  if (maxfd < 0 || maxfd > 65536) maxfd = 65536;
  for (int fd = lowest; fd < maxfd; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0) fds.push_back(fd);
  }
  return fds;
}
}  // namespace
#endif

int spawn_process(const std::string& executable, const std::vector<std::string>& args,
                  const std::vector<native_handle>& inherit, UniqueHandle* process_handle) {
  const int n = static_cast<int>(inherit.size());
  const int limit = first_inherited_handle + n;  // targets are [3, limit)
  // Move every source above the target range first (close-on-exec copies), so dup2 to a target
  // never clobbers a source still to be placed.
  std::vector<UniqueHandle> staged;
  staged.reserve(inherit.size());
  for (native_handle h : inherit) {
    int fd = ::fcntl(h, F_DUPFD_CLOEXEC, limit);
    if (fd < 0) throw_last_error("fcntl(F_DUPFD_CLOEXEC)");
    staged.emplace_back(fd);
  }
  FileActions fa;
  for (int i = 0; i < n; ++i) fa.check(posix_spawn_file_actions_adddup2(&fa.a, staged[i].get(), first_inherited_handle + i));
#if MP_HAVE_CLOSEFROM
  // Descriptors the application opened without O_CLOEXEC must not leak into the child either.
  fa.check(posix_spawn_file_actions_addclosefrom_np(&fa.a, limit));
#else
  // Without closefrom, close what is open above the range and not close-on-exec.
  for (int fd : open_descriptors_from(limit)) {
    int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0 && (flags & FD_CLOEXEC) == 0) fa.check(posix_spawn_file_actions_addclose(&fa.a, fd));
  }
#endif
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const auto& s : args) argv.push_back(const_cast<char*>(s.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  int e = ::posix_spawn(&pid, executable.c_str(), &fa.a, nullptr, argv.data(), environ);
  if (e != 0) throw std::system_error(e, std::system_category(), "posix_spawn " + executable);
  if (process_handle) *process_handle = open_process_handle(static_cast<int>(pid));
  return static_cast<int>(pid);
}

UniqueHandle inherited_handle(std::size_t index) {
  int fd = first_inherited_handle + static_cast<int>(index);
  set_inheritable(fd, false);
  return UniqueHandle(fd);
}

UniqueHandle open_process_handle(int pid) {
#if MP_HAVE_PIDFD
  long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) {
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    return UniqueHandle(static_cast<int>(fd));
  }
#else
  (void)pid;
#endif
  return UniqueHandle();
}

namespace {
int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return 255;
}
}  // namespace

std::optional<int> reap(int pid, bool block) {
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, block ? 0 : WNOHANG);
    if (r == pid) return decode_status(status);
    if (r == 0) return std::nullopt;
    if (errno == EINTR) continue;
    if (errno == ECHILD) return 255;  // reaped by someone else (a SIGCHLD=SIG_IGN application)
    throw_last_error("waitpid");
  }
}

std::optional<std::pair<int, int>> reap_any() {
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(-1, &status, WNOHANG);
    if (r > 0) return std::pair{static_cast<int>(r), decode_status(status)};
    if (r == 0) return std::nullopt;
    if (errno == EINTR) continue;
    return std::nullopt;  // ECHILD: no children
  }
}

void quiet_standard_input_output() noexcept {
  int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return;
  ::dup2(null, 0);
  ::dup2(null, 1);
  ::close(null);
}

void on_termination_request(void (*fn)()) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  if (int e = ::pthread_sigmask(SIG_BLOCK, &set, nullptr)) throw std::system_error(e, std::system_category(), "pthread_sigmask");
  std::thread([set, fn] {
    int sig = 0;
    while (::sigwait(&set, &sig) != 0 || sig != SIGTERM) {
    }
    fn();
  }).detach();
}

bool process_exists(int pid) noexcept {
  if (pid <= 0) return false;
  if (::kill(pid, 0) < 0 && errno == ESRCH) return false;
#if MP_HAVE_PROCFS
  // "pid (comm) S ...": the state follows the last ')' (comm may hold anything).
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno != ENOENT;
  char buf[512];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return true;
  buf[n] = '\0';
  const char* paren = std::strrchr(buf, ')');
  if (paren != nullptr && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X')) return false;
#else
  // No /proc: a child of ours that has ended but is not reaped yet is found by waitid(WNOWAIT),
  // which leaves it to its reaper. A zombie of another parent still reads as alive.
  siginfo_t info;
  std::memset(&info, 0, sizeof info);
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
    return false;
  }
#endif
  return true;
}

void send_signal(int pid, int sig) {
  if (::kill(pid, sig) < 0 && errno != ESRCH) throw_last_error("kill");
}

std::string signal_name(int sig) {
  switch (sig) {
    case SIGHUP: return "SIGHUP";
    case SIGINT: return "SIGINT";
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGUSR1: return "SIGUSR1";
    case SIGSEGV: return "SIGSEGV";
    case SIGUSR2: return "SIGUSR2";
    case SIGPIPE: return "SIGPIPE";
    case SIGALRM: return "SIGALRM";
    case SIGTERM: return "SIGTERM";
    case SIGCHLD: return "SIGCHLD";
    case SIGCONT: return "SIGCONT";
    case SIGSTOP: return "SIGSTOP";
    case SIGTSTP: return "SIGTSTP";
    case SIGXCPU: return "SIGXCPU";
    case SIGXFSZ: return "SIGXFSZ";
    case SIGSYS: return "SIGSYS";
    default: return {};
  }
}

void exit_now(int code) noexcept { ::_exit(code); }

void write_stderr(const std::string& text) noexcept {
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    ssize_t n = ::write(2, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

// ---- argv, captured before main() ---------------------------------------------------------------
namespace {
std::vector<std::string>& captured_args() {
  static std::vector<std::string> args;
  return args;
}
#if MP_HAVE_GLIBC_INIT_ARGV
// glibc passes (argc, argv, envp) to the functions of .init_array. A prioritised entry runs before
// every ordinary static constructor, so argv is known to all of them.
void capture_args(int argc, char** argv, char**) {
  auto& a = captured_args();
  for (int i = 0; i < argc; ++i) a.emplace_back(argv[i]);
}
__attribute__((section(".init_array.00101"), used)) void (*const capture_args_entry)(int, char**, char**) = &capture_args;
#endif
}  // namespace

std::vector<std::string> process_arguments() {
#if MP_HAVE_GLIBC_INIT_ARGV
  return captured_args();
#elif MP_HAVE_NSGETARGV
  std::vector<std::string> a;
  for (int i = 0; i < *_NSGetArgc(); ++i) a.emplace_back((*_NSGetArgv())[i]);
  return a;
#elif MP_HAVE_PROCFS
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> a;
  for (std::string s; std::getline(f, s, '\0');) a.push_back(s);
  return a;
#else
  return captured_args();
#endif
}

namespace {
// The working directory the program started in: a relative argv[0] (or PATH entry) names the
// program from there, whatever directory it has moved to since.
const std::string& startup_directory() {
  static const std::string dir = [] {
    char buf[PATH_MAX];
    return ::getcwd(buf, sizeof buf) != nullptr ? std::string(buf) : std::string();
  }();
  return dir;
}
#if !MP_HAVE_PROCFS
// Read as the library loads, before main() can change directory (only here is it needed).
[[maybe_unused]] const std::string& startup_directory_at_load = startup_directory();
#endif

std::string from_startup_directory(const std::string& p) {
  if (p.empty() || p[0] == '/' || startup_directory().empty()) return p;
  return startup_directory() + "/" + p;
}
}  // namespace

std::string executable_path() {
#if MP_HAVE_PROCFS
  std::string buf(PATH_MAX, '\0');
  ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size());
  if (n > 0) {
    buf.resize(static_cast<std::size_t>(n));
    return buf;
  }
#endif
  // Portable: argv[0], made absolute against the start-up directory if it has a slash,
  // otherwise looked up in PATH.
  auto args = process_arguments();
  if (args.empty()) return {};
  std::string a0 = args[0];
  if (a0.find('/') != std::string::npos) {
    a0 = from_startup_directory(a0);
    char resolved[PATH_MAX];
    if (::realpath(a0.c_str(), resolved)) return resolved;
    return a0;
  }
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= p.size()) {
    std::size_t end = p.find(':', start);
    if (end == std::string::npos) end = p.size();
    std::string cand = from_startup_directory(p.substr(start, end - start) + "/" + a0);
    if (::access(cand.c_str(), X_OK) == 0) return cand;
    start = end + 1;
  }
  return a0;
}

int cpu_count() {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  if (n > 0) return static_cast<int>(n);
  unsigned h = std::thread::hardware_concurrency();
  return h > 0 ? static_cast<int>(h) : 1;
}

int process_cpu_count() {
#if MP_HAVE_SCHED_GETAFFINITY
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  return cpu_count();
}

void register_atfork(void (*prepare)(), void (*parent)(), void (*child)()) {
  if (int e = ::pthread_atfork(prepare, parent, child)) throw std::system_error(e, std::system_category(), "pthread_atfork");
}

// ---- SIGCHLD self-pipe --------------------------------------------------------------------------
namespace {
int g_sigchld_write = -1;
int g_sigchld_read = -1;
struct sigaction g_old_chld;
void on_sigchld(int) {
  int saved = errno;
  char c = 0;
  [[maybe_unused]] ssize_t r = ::write(g_sigchld_write, &c, 1);
  errno = saved;
}
}  // namespace

ChildExitNotifier::ChildExitNotifier() {
  HandlePair p = make_pipe();
  ::fcntl(p.first.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(p.second.get(), F_SETFL, O_NONBLOCK);
  g_sigchld_read = p.first.release();
  g_sigchld_write = p.second.release();
  struct sigaction sa {};
  sa.sa_handler = &on_sigchld;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  if (::sigaction(SIGCHLD, &sa, &g_old_chld) < 0) throw_last_error("sigaction(SIGCHLD)");
}

ChildExitNotifier::~ChildExitNotifier() {
  ::sigaction(SIGCHLD, &g_old_chld, nullptr);
  close_handle(g_sigchld_read);
  close_handle(g_sigchld_write);
  g_sigchld_read = g_sigchld_write = -1;
}

native_handle ChildExitNotifier::handle() const noexcept { return g_sigchld_read; }

void ChildExitNotifier::drain() noexcept {
  char buf[64];
  while (::read(g_sigchld_read, buf, sizeof buf) > 0) {
  }
}

void ChildExitNotifier::reset_in_child() noexcept {
  ::signal(SIGCHLD, SIG_DFL);
  ::signal(SIGPIPE, SIG_DFL);
  close_handle(g_sigchld_read);
  close_handle(g_sigchld_write);
  g_sigchld_read = g_sigchld_write = -1;
}

void ignore_broken_pipes() noexcept { ::signal(SIGPIPE, SIG_IGN); }

}  // namespace mp::platform
