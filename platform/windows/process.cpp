// Processes on Windows: CreateProcessW with an explicit handle list, TerminateProcess, process
// handles as sentinels. There is no fork: fork_process() refuses (the start methods above never
// call it there: get_all_start_methods() is {"spawn"}).
#include "platform/process.hpp"
#include "platform/error.hpp"
#include "platform/pipe.hpp"
#include "platform/windows/process_handle.hpp"
#include "platform/windows/win.hpp"

#include <tlhelp32.h>

#include <bitset>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <stdexcept>

namespace mp::platform {

const int signal_term = SIGTERM;  // 15 (the CRT defines it)
const int signal_kill = 9;        // no SIGKILL in the CRT; TerminateProcess(kSignalBase + 9)

namespace {
constexpr const char* kHandlesFlag = "--mp-handles=";

// The command line as the child's CommandLineToArgvW will split it back (MSVC CRT rules).
void append_quoted(std::wstring& line, const std::wstring& arg) {
  if (!line.empty()) line += L' ';
  if (!arg.empty() && arg.find_first_of(L" \t\n\v\"") == std::wstring::npos) {
    line += arg;
    return;
  }
  line += L'"';
  for (auto it = arg.begin();; ++it) {
    std::size_t slashes = 0;
    while (it != arg.end() && *it == L'\\') {
      ++it;
      ++slashes;
    }
    if (it == arg.end()) {
      line.append(slashes * 2, L'\\');
      break;
    }
    if (*it == L'"') {
      line.append(slashes * 2 + 1, L'\\');
      line += L'"';
    } else {
      line.append(slashes, L'\\');
      line += *it;
    }
  }
  line += L'"';
}

struct Arguments {
  std::vector<std::string> args;     // without our handle list
  std::vector<native_handle> handles;  // what the parent placed, in order
};

// The command line split as the C runtime and CommandLineToArgvW split it (that function lives in
// shell32, which loads user32 - a desktop under Wine - for every program: not worth it here).
std::vector<std::wstring> split_command_line(const wchar_t* p) {
  std::vector<std::wstring> out;
  if (!p) return out;
  // The program name: up to the closing quote, or the first blank; no backslash rules.
  std::wstring first;
  if (*p == L'"') {
    for (++p; *p && *p != L'"'; ++p) first += *p;
    if (*p == L'"') ++p;
  } else {
    for (; *p && *p != L' ' && *p != L'\t'; ++p) first += *p;
  }
  out.push_back(first);
  for (;;) {
    while (*p == L' ' || *p == L'\t') ++p;
    if (!*p) break;
    std::wstring arg;
    bool quoted = false;
    for (; *p; ) {
      if (!quoted && (*p == L' ' || *p == L'\t')) break;
      if (*p == L'\\') {
        std::size_t n = 0;
        while (*p == L'\\') {
          ++n;
          ++p;
        }
        if (*p == L'"') {
          arg.append(n / 2, L'\\');
          if (n % 2) {
            arg += L'"';
            ++p;
          }
        } else {
          arg.append(n, L'\\');
        }
        continue;
      }
      if (*p == L'"') {
        if (quoted && p[1] == L'"') {  // "" inside quotes: a literal quote
          arg += L'"';
          p += 2;
          continue;
        }
        quoted = !quoted;
        ++p;
        continue;
      }
      arg += *p++;
    }
    out.push_back(std::move(arg));
  }
  return out;
}

const Arguments& parsed_arguments() {
  static const Arguments parsed = [] {
    Arguments a;
    for (const auto& w : split_command_line(GetCommandLineW())) a.args.push_back(win::narrow(w));
    if (!a.args.empty() && a.args.back().rfind(kHandlesFlag, 0) == 0) {
      std::string list = a.args.back().substr(std::string(kHandlesFlag).size());
      a.args.pop_back();
      std::size_t pos = 0;
      while (pos < list.size()) {
        std::size_t end = list.find(',', pos);
        if (end == std::string::npos) end = list.size();
        a.handles.push_back(reinterpret_cast<native_handle>(
            static_cast<std::uintptr_t>(std::stoull(list.substr(pos, end - pos)))));
        pos = end + 1;
      }
    }
    return a;
  }();
  return parsed;
}

struct AttributeList {
  std::vector<char> storage;
  LPPROC_THREAD_ATTRIBUTE_LIST list = nullptr;
  explicit AttributeList(DWORD count) {
    SIZE_T size = 0;
    InitializeProcThreadAttributeList(nullptr, count, 0, &size);
    storage.resize(size);
    list = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(storage.data());
    if (!InitializeProcThreadAttributeList(list, count, 0, &size)) throw_last_error("InitializeProcThreadAttributeList");
  }
  ~AttributeList() { DeleteProcThreadAttributeList(list); }
};

UniqueHandle inheritable_copy(HANDLE x) {
  HANDLE out = nullptr;
  if (!DuplicateHandle(GetCurrentProcess(), x, GetCurrentProcess(), &out, 0, TRUE, DUPLICATE_SAME_ACCESS))
    throw_last_error("DuplicateHandle(inheritable)");
  return UniqueHandle(out);
}
}  // namespace

int current_pid() noexcept { return static_cast<int>(GetCurrentProcessId()); }

int parent_pid() noexcept {
  static const int parent = [] {
    DWORD self = GetCurrentProcessId();
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
    if (snap == INVALID_HANDLE_VALUE) return 0;
    PROCESSENTRY32W e{};
    e.dwSize = sizeof e;
    int found = 0;
    for (BOOL ok = Process32FirstW(snap, &e); ok; ok = Process32NextW(snap, &e)) {
      if (e.th32ProcessID == self) {
        found = static_cast<int>(e.th32ParentProcessID);
        break;
      }
    }
    CloseHandle(snap);
    return found;
  }();
  return parent;
}

int fork_process() { throw std::system_error(std::make_error_code(std::errc::function_not_supported), "fork"); }

int spawn_process(const std::string& executable, const std::vector<std::string>& args,
                  const std::vector<native_handle>& inherit, UniqueHandle* process_handle) {
  // Inheritable copies of exactly the child's handles, named in PROC_THREAD_ATTRIBUTE_HANDLE_LIST:
  // nothing else crosses, even a handle another thread made inheritable at the same moment.
  std::vector<UniqueHandle> copies;
  std::vector<HANDLE> list;
  std::string handle_arg = kHandlesFlag;
  for (std::size_t i = 0; i < inherit.size(); ++i) {
    copies.push_back(inheritable_copy(win::h(inherit[i])));
    list.push_back(win::h(copies.back().get()));
    if (i) handle_arg += ',';
    handle_arg += std::to_string(reinterpret_cast<std::uintptr_t>(copies.back().get()));
  }
  STARTUPINFOEXW si{};
  si.StartupInfo.cb = sizeof si;
  si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
  HANDLE* std_slots[3] = {&si.StartupInfo.hStdInput, &si.StartupInfo.hStdOutput, &si.StartupInfo.hStdError};
  const DWORD std_ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
  for (int i = 0; i < 3; ++i) {
    HANDLE x = GetStdHandle(std_ids[i]);
    if (x && x != INVALID_HANDLE_VALUE) {
      try {
        copies.push_back(inheritable_copy(x));
        *std_slots[i] = win::h(copies.back().get());
        list.push_back(*std_slots[i]);
      } catch (const std::system_error&) {
        *std_slots[i] = nullptr;  // a console pseudo-handle: the console is shared anyway
      }
    }
  }
  std::wstring line;
  for (const auto& a : args) append_quoted(line, win::widen(a));
  if (!inherit.empty()) append_quoted(line, win::widen(handle_arg));
  AttributeList attrs(1);
  if (!list.empty() && !UpdateProcThreadAttribute(attrs.list, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, list.data(),
                                                  list.size() * sizeof(HANDLE), nullptr, nullptr))
    throw_last_error("UpdateProcThreadAttribute");
  si.lpAttributeList = attrs.list;
  PROCESS_INFORMATION pi{};
  std::wstring exe = win::widen(executable);
  if (!CreateProcessW(exe.c_str(), line.data(), nullptr, nullptr, list.empty() ? FALSE : TRUE,
                      EXTENDED_STARTUPINFO_PRESENT | CREATE_UNICODE_ENVIRONMENT, nullptr, nullptr,
                      &si.StartupInfo, &pi))
    throw_last_error("CreateProcessW(" + executable + ")");
  CloseHandle(pi.hThread);
  if (process_handle) {
    process_handle->reset(pi.hProcess);
  } else {
    CloseHandle(pi.hProcess);
  }
  return static_cast<int>(pi.dwProcessId);
}

UniqueHandle inherited_handle(std::size_t index) {
  const auto& hs = parsed_arguments().handles;
  if (index >= hs.size())
    throw std::runtime_error("mp: the parent passed " + std::to_string(hs.size()) + " handles, not " +
                             std::to_string(index + 1));
  set_inheritable(hs[index], false);
  return UniqueHandle(hs[index]);
}

UniqueHandle open_process_handle(int pid) {
  HANDLE x = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION | PROCESS_TERMINATE, FALSE,
                         static_cast<DWORD>(pid));
  return UniqueHandle(x ? x : invalid_handle);
}

std::optional<int> process_exit_code(native_handle process, bool block) {
  DWORD r = WaitForSingleObject(win::h(process), block ? INFINITE : 0);
  if (r == WAIT_TIMEOUT) return std::nullopt;
  if (r == WAIT_FAILED) throw_last_error("WaitForSingleObject(process)");
  DWORD code = 0;
  if (!GetExitCodeProcess(win::h(process), &code)) throw_last_error("GetExitCodeProcess");
  return win::normalise_exit_code(code);
}

std::optional<int> wait_process(native_handle process, unsigned long ms) {
  DWORD r = WaitForSingleObject(win::h(process), ms);
  if (r == WAIT_TIMEOUT) return std::nullopt;
  if (r == WAIT_FAILED) throw_last_error("WaitForSingleObject(process)");
  return process_exit_code(process, false);
}

std::optional<int> reap(int pid, bool block) {
  UniqueHandle p = open_process_handle(pid);
  if (!p) return 255;
  return process_exit_code(p.get(), block);
}

std::optional<std::pair<int, int>> reap_any() { return std::nullopt; }

bool process_exists(int pid) noexcept {
  if (pid <= 0) return false;
  HANDLE x = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, static_cast<DWORD>(pid));
  if (!x) return GetLastError() == ERROR_ACCESS_DENIED;  // another user's: it exists
  bool alive = WaitForSingleObject(x, 0) == WAIT_TIMEOUT;
  CloseHandle(x);
  return alive;
}

void terminate_process(native_handle process, int sig) {
  if (TerminateProcess(win::h(process), win::kSignalBase + static_cast<DWORD>(sig))) return;
  DWORD e = GetLastError();
  // Already exited (or exiting): not an error, as on POSIX.
  if (e == ERROR_ACCESS_DENIED && WaitForSingleObject(win::h(process), 0) == WAIT_OBJECT_0) return;
  win::throw_error(e, "TerminateProcess");
}

void send_signal(int pid, int sig) {
  if (sig == 0) return;
  HANDLE x = OpenProcess(PROCESS_TERMINATE | SYNCHRONIZE, FALSE, static_cast<DWORD>(pid));
  if (!x) {
    if (GetLastError() == ERROR_INVALID_PARAMETER) return;  // no such process
    throw_last_error("OpenProcess");
  }
  UniqueHandle p(x);
  terminate_process(p.get(), sig);
}

std::string signal_name(int sig) {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGSEGV: return "SIGSEGV";
    case SIGTERM: return "SIGTERM";
    case SIGABRT: return "SIGABRT";
    case 9: return "SIGKILL";
    default: return "";
  }
}

void quiet_standard_input_output() noexcept {
  HANDLE in = CreateFileW(L"NUL", GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr, OPEN_EXISTING, 0, nullptr);
  HANDLE out = CreateFileW(L"NUL", GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr, OPEN_EXISTING, 0, nullptr);
  if (in != INVALID_HANDLE_VALUE) SetStdHandle(STD_INPUT_HANDLE, in);
  if (out != INVALID_HANDLE_VALUE) SetStdHandle(STD_OUTPUT_HANDLE, out);
  std::freopen("NUL", "r", stdin);
  std::freopen("NUL", "w", stdout);
}

void exit_now(int code) noexcept {
  // _exit's equivalent: no atexit handlers, no static destructors, no DLL detach notifications.
  TerminateProcess(GetCurrentProcess(), static_cast<UINT>(code));
  ExitProcess(static_cast<UINT>(code));
}

void write_stderr(const std::string& text) noexcept {
  HANDLE err = GetStdHandle(STD_ERROR_HANDLE);
  if (!err || err == INVALID_HANDLE_VALUE) return;
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    DWORD done = 0;
    if (!WriteFile(err, p, static_cast<DWORD>(left), &done, nullptr) || done == 0) return;
    p += done;
    left -= done;
  }
}

std::string executable_path() {
  std::wstring buf(MAX_PATH, L'\0');
  for (;;) {
    DWORD n = GetModuleFileNameW(nullptr, buf.data(), static_cast<DWORD>(buf.size()));
    if (n == 0) throw_last_error("GetModuleFileNameW");
    if (n < buf.size()) return win::narrow(buf.data(), n);
    buf.resize(buf.size() * 2);
  }
}

std::vector<std::string> process_arguments() { return parsed_arguments().args; }

int cpu_count() {
  DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
  return n ? static_cast<int>(n) : 1;
}

int process_cpu_count() {
  DWORD_PTR mine = 0, system = 0;
  if (!GetProcessAffinityMask(GetCurrentProcess(), &mine, &system) || mine == 0) return cpu_count();
  int n = static_cast<int>(std::bitset<sizeof(DWORD_PTR) * 8>(mine).count());
  return std::min(n, cpu_count());
}

void register_atfork(void (*)(), void (*)(), void (*)()) {}  // no fork on Windows

// No SIGCHLD and no fork: the forkserver (its only user) does not exist on Windows.
ChildExitNotifier::ChildExitNotifier() {
  throw std::system_error(std::make_error_code(std::errc::function_not_supported), "ChildExitNotifier");
}
ChildExitNotifier::~ChildExitNotifier() = default;
native_handle ChildExitNotifier::handle() const noexcept { return invalid_handle; }
void ChildExitNotifier::drain() noexcept {}
void ChildExitNotifier::reset_in_child() noexcept {}

// TerminateProcess cannot be intercepted: nothing to install.
void on_termination_request(void (*)()) {}

void ignore_broken_pipes() noexcept {}  // no SIGPIPE: a write to a closed pipe fails with an error

}  // namespace mp::platform

namespace mp::platform {
UniqueHandle current_process_handle() {
  HANDLE out = nullptr;
  if (!DuplicateHandle(GetCurrentProcess(), GetCurrentProcess(), GetCurrentProcess(), &out,
                       SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, 0))
    throw_last_error("DuplicateHandle(current process)");
  return UniqueHandle(out);
}
}  // namespace mp::platform
