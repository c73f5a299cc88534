// platform/handle_passing.hpp - sending open handles to another process (SCM_RIGHTS on POSIX).
#pragma once
#include "platform/unique_handle.hpp"
#include <cstddef>
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
}  // namespace mp::platform
