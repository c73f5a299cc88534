// platform/socket.hpp - local (same-machine) stream sockets for the library's own servers.
#pragma once
#include "platform/unique_handle.hpp"
#include <string>

namespace mp::platform {
// Listens on a fresh private address (an abstract name where the OS has them, else a path in a
// 0700 directory); `address` receives it. The socket is not inheritable.
UniqueHandle listen_local(std::string& address, int backlog);
UniqueHandle connect_local(const std::string& address);
UniqueHandle accept_connection(native_handle listener);
// Removes what listen_local left on the file system (nothing for abstract names).
void remove_local_address(const std::string& address) noexcept;
// Bounds each blocking read on the socket (a peer that stops talking cannot stall us for ever).
void set_receive_timeout(native_handle socket, double seconds);
}  // namespace mp::platform
