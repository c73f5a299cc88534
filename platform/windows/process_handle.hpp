// platform/windows/process_handle.hpp - what the Windows start method needs beyond the seam:
// a child is known by its process HANDLE (its sentinel), not by a pid to reap.
#pragma once
#include "platform/unique_handle.hpp"
#include <optional>

namespace mp::platform {
// The exit code (CPython's convention, see win::normalise_exit_code) of the process behind a
// process handle, waiting for its end when `block`; nullopt while it runs.
std::optional<int> process_exit_code(native_handle process, bool block);
// Waits up to `ms` milliseconds (INFINITE: 0xFFFFFFFF); the exit code, or nullopt on timeout.
std::optional<int> wait_process(native_handle process, unsigned long ms);
// Ends the process as by `signal` (TerminateProcess; the exit code reads back as -signal).
// One that has already ended is not an error.
void terminate_process(native_handle process, int signal);
}  // namespace mp::platform

namespace mp::platform {
// A handle to this process that a child can wait on (SYNCHRONIZE), not inheritable.
UniqueHandle current_process_handle();
}  // namespace mp::platform
