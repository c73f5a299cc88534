// Errors, handle closing and text conversion for the Windows backend.
#include "platform/error.hpp"
#include "platform/unique_handle.hpp"
#include "platform/windows/win.hpp"

#include <cerrno>
#include <csignal>
#include <mutex>

namespace mp::platform {

namespace win {

std::wstring widen(const std::string& s) {
  if (s.empty()) return {};
  int n = MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), nullptr, 0);
  if (n <= 0) throw_error(GetLastError(), "MultiByteToWideChar");
  std::wstring out(static_cast<std::size_t>(n), L'\0');
  MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), out.data(), n);
  return out;
}

std::string narrow(const wchar_t* w, std::size_t len) {
  if (len == 0) return {};
  int n = WideCharToMultiByte(CP_UTF8, 0, w, static_cast<int>(len), nullptr, 0, nullptr, nullptr);
  if (n <= 0) throw_error(GetLastError(), "WideCharToMultiByte");
  std::string out(static_cast<std::size_t>(n), '\0');
  WideCharToMultiByte(CP_UTF8, 0, w, static_cast<int>(len), out.data(), n, nullptr, nullptr);
  return out;
}

std::string narrow(const std::wstring& w) { return narrow(w.data(), w.size()); }

std::error_code to_error_code(DWORD e) noexcept {
  int posix = 0;
  switch (e) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
      posix = ENOENT;
      break;
    case ERROR_ALREADY_EXISTS:
    case ERROR_FILE_EXISTS:
    case ERROR_PIPE_BUSY:
      posix = EEXIST;
      break;
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:
    case ERROR_PIPE_NOT_CONNECTED:
      posix = EPIPE;
      break;
    case ERROR_INVALID_HANDLE:
      posix = EBADF;
      break;
    case ERROR_ACCESS_DENIED:
      posix = EACCES;
      break;
    case ERROR_INVALID_PARAMETER:
    case ERROR_INVALID_NAME:
      posix = EINVAL;
      break;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_COMMITMENT_LIMIT:
      posix = ENOMEM;
      break;
    case WSAECONNREFUSED:
      posix = ECONNREFUSED;
      break;
    case WSAECONNRESET:
      posix = ECONNRESET;
      break;
    case WSAEADDRINUSE:
      posix = EADDRINUSE;
      break;
    case ERROR_TIMEOUT:
    case WAIT_TIMEOUT:
    case WSAETIMEDOUT:
      posix = ETIMEDOUT;
      break;
    default:
      return {static_cast<int>(e), std::system_category()};
  }
  return {posix, std::generic_category()};
}

void throw_error(DWORD e, const std::string& what) { throw std::system_error(to_error_code(e), what); }

std::wstring object_name(const std::string& name) {
  std::string base = !name.empty() && name[0] == '/' ? name.substr(1) : name;
  return L"Local\\" + widen(base);
}

int normalise_exit_code(DWORD code) noexcept {
  if (code > kSignalBase && code <= kSignalBase + 64) return -static_cast<int>(code - kSignalBase);
  switch (code) {  // crashes read as the signal POSIX would have delivered
    case 0xC0000005:  // STATUS_ACCESS_VIOLATION
    case 0xC00000FD:  // STATUS_STACK_OVERFLOW
      return -SIGSEGV;
    case 0xC000001D:  // STATUS_ILLEGAL_INSTRUCTION
      return -SIGILL;
    case 0xC0000094:  // STATUS_INTEGER_DIVIDE_BY_ZERO
    case 0xC000008E:  // STATUS_FLOAT_DIVIDE_BY_ZERO
      return -SIGFPE;
    case 0xC0000409:  // STATUS_STACK_BUFFER_OVERRUN (__fastfail, abort in the UCRT)
      return -SIGABRT;
    case 0xC000013A:  // STATUS_CONTROL_C_EXIT
      return -SIGINT;
    default:
      return static_cast<int>(code);
  }
}

void ensure_winsock() {
  static std::once_flag once;
  std::call_once(once, [] {
    WSADATA data;
    int r = WSAStartup(MAKEWORD(2, 2), &data);
    if (r != 0) throw_error(static_cast<DWORD>(r), "WSAStartup");
  });
}

bool is_socket(HANDLE x) noexcept {
  if (GetFileType(x) != FILE_TYPE_PIPE) return false;
  // Named pipes are FILE_TYPE_PIPE too; only a socket answers getsockopt.
  try {
    ensure_winsock();
  } catch (...) {
    return false;
  }
  int type = 0;
  int len = sizeof type;
  return getsockopt(reinterpret_cast<SOCKET>(x), SOL_SOCKET, SO_TYPE, reinterpret_cast<char*>(&type), &len) == 0;
}

}  // namespace win

std::error_code last_error() noexcept { return win::to_error_code(GetLastError()); }

void throw_last_error(const std::string& what) { throw std::system_error(last_error(), what); }

void close_handle_listener_state(native_handle h) noexcept;  // socket.cpp: a pipe listener's state

void close_handle(native_handle x) noexcept {
  DWORD saved = GetLastError();
  close_handle_listener_state(x);
  if (win::is_socket(win::h(x))) {
    closesocket(reinterpret_cast<SOCKET>(x));
  } else {
    CloseHandle(win::h(x));
  }
  SetLastError(saved);
}

}  // namespace mp::platform
