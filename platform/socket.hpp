// platform/socket.hpp - stream sockets: local (Unix) and TCP, for Listener/Client and the
// library's own servers. Every socket is created non-inheritable.
#pragma once
#include "platform/unique_handle.hpp"
#include <cstdint>
#include <optional>
#include <string>

namespace mp::platform {

// Listens on a fresh private address (an abstract name where the OS has them, else a path in a
// 0700 directory); `address` receives it.
UniqueHandle listen_local(std::string& address, int backlog);
UniqueHandle connect_local(const std::string& address);
// Removes what listen_local / listen_unix left on the file system (nothing for abstract names).
void remove_local_address(const std::string& address) noexcept;
// Removes the directory of a listen_local address once it is empty: for the last process to use
// the address, when the one that made it (and could not remove its directory at exit while the
// address was there) has gone.
void remove_local_address_directory(const std::string& address) noexcept;

// A Unix socket at `path` (a leading '\0': an abstract name).
UniqueHandle listen_unix(const std::string& path, int backlog);
UniqueHandle connect_unix(const std::string& path);

// TCP on IPv4 or IPv6 (the host decides: "::1", "localhost", "0.0.0.0"...); port 0 picks a free one.
// `bound_port` receives the port actually bound.
UniqueHandle listen_tcp(const std::string& host, std::uint16_t port, int backlog, std::uint16_t& bound_port,
                        std::string& bound_host);
UniqueHandle connect_tcp(const std::string& host, std::uint16_t port);

struct PeerAddress {
  bool tcp = false;
  std::string host_or_path;
  std::uint16_t port = 0;
};
UniqueHandle accept_connection(native_handle listener, PeerAddress* peer = nullptr);

// Bounds each blocking read on the socket (a peer that stops talking cannot stall us for ever).
void set_receive_timeout(native_handle socket, double seconds);
bool is_socket(native_handle h) noexcept;
// A private directory (0700) for this process's socket files, removed at exit (CPython's
// util.get_temp_dir).
std::string private_temp_dir();
// Removes it now if it is this process's and empty (also called at exit; children of the
// library end without the C library's exit functions, so their exit path calls it).
void remove_private_temp_dir() noexcept;
bool abstract_sockets_available() noexcept;

}  // namespace mp::platform
