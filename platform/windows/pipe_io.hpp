// platform/windows/pipe_io.hpp - overlapped pipe I/O shared by the Windows backend's files.
#pragma once
#include "platform/pipe.hpp"
#include "platform/windows/win.hpp"

namespace mp::platform::win {
constexpr DWORD kPipeBuffer = 64 * 1024;
// This thread's event for overlapped calls.
HANDLE thread_event();
// A fresh unguessable pipe name, \\.\pipe\mp-<pid>-<n>-<random>.
std::wstring fresh_pipe_name();
// Two connected ends of a new named pipe (server end first; for a one-way pipe it reads).
HandlePair make_named_pipe_pair(bool duplex);
// One ReadFile/WriteFile, waited for; false with GetLastError() set on failure.
bool overlapped_io(HANDLE x, bool write, void* p, DWORD n, DWORD& done);
}  // namespace mp::platform::win
