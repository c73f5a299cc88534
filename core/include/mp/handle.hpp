// mp/handle.hpp - what an OS handle is, without including an OS header.
#pragma once
#include <cstdint>

namespace mp {

#if defined(_WIN32)
using native_handle_t = void*;  // a HANDLE
inline const native_handle_t invalid_native_handle = reinterpret_cast<void*>(static_cast<std::intptr_t>(-1));
#else
using native_handle_t = int;    // a file descriptor
inline constexpr native_handle_t invalid_native_handle = -1;
#endif

// The universal waitable of a process: a pipe end that reads EOF (or delivers the exit status)
// when the process is gone on POSIX, the process HANDLE on Windows. `connection::wait` accepts it.
struct Sentinel {
  native_handle_t handle = invalid_native_handle;
  friend bool operator==(const Sentinel&, const Sentinel&) = default;
};

}  // namespace mp
