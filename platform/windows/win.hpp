// platform/windows/win.hpp - private to the Windows backend: <windows.h>, text conversion, errors.
#pragma once
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <winsock2.h>
#include <windows.h>

#include "platform/native.hpp"

#include <string>
#include <system_error>

namespace mp::platform::win {

std::wstring widen(const std::string& utf8);
std::string narrow(const std::wstring& wide);
std::string narrow(const wchar_t* wide, std::size_t n);

// A Windows error as a std::error_code: the errno-like ones callers test for (ENOENT, EEXIST,
// EPIPE, EBADF, EACCES, EINVAL, ENOMEM, ECONNREFUSED, ETIMEDOUT) in the generic category, so
// `code == std::errc::file_exists` holds as on POSIX; others in the system category.
std::error_code to_error_code(DWORD error) noexcept;
[[noreturn]] void throw_error(DWORD error, const std::string& what);

inline HANDLE h(native_handle x) noexcept { return static_cast<HANDLE>(x); }

// Winsock, started once for the process (sockets: Listener/Client over TCP).
void ensure_winsock();
bool is_socket(HANDLE x) noexcept;

// The object names of this backend live in the session namespace ("Local\\"): POSIX-style names
// "/mp-..." become L"Local\\mp-...".
std::wstring object_name(const std::string& posix_name);

// Exit codes: TerminateProcess(h, kSignalBase + sig) is how this backend delivers "signals"; the
// code reads back as -sig, as on POSIX (CPython reads any terminate() as -SIGTERM).
constexpr DWORD kSignalBase = 0x10000;
int normalise_exit_code(DWORD code) noexcept;

}  // namespace mp::platform::win
