// platform/handle_passing.hpp - sending open handles to another process (SCM_RIGHTS on POSIX).
#pragma once
#include "platform/unique_handle.hpp"
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace mp::platform {
// Sends `data` (at least one byte) with the handles attached, over a local stream socket.
void send_handles(native_handle socket, std::span<const std::byte> data, std::span<const native_handle> handles);
// Receives exactly data.size() bytes and up to `max_handles` handles that came with them.
// Returns false on end of file before any byte. Handles arrive non-inheritable.
bool recv_handles(native_handle socket, std::span<std::byte> data, std::vector<UniqueHandle>& handles,
                  std::size_t max_handles);
// One read of up to data.size() bytes (0 at end of file); handles that arrive with them are
// appended to `handles` (non-inheritable). On a non-socket it is a plain read.
std::size_t recv_some_with_handles(native_handle socket, std::span<std::byte> data, std::vector<UniqueHandle>& handles);

// Where the OS cannot attach handles to bytes (Windows), a handle travels as a value: the sender
// duplicates it into the process that will hold it until the receiver takes it - the receiver when
// its pid is known (`target_pid`), else the sender itself - and the receiver calls import_handle
// with that process's pid. POSIX attaches them (SCM_RIGHTS) and never calls these.
bool handles_travel_as_values() noexcept;
struct ExportedHandle {
  int holder_pid = 0;       // the process the value is valid in
  std::uint64_t value = 0;
};
ExportedHandle export_handle(native_handle h, int target_pid = 0);
// Takes ownership of an exported handle: from another process, it is closed there.
UniqueHandle import_handle(const ExportedHandle& h);
}  // namespace mp::platform
