// mp/connection.hpp - multiprocessing.connection: Pipe, Connection, Listener, Client, wait.
//
// Messages are framed as CPython frames them (4-byte big-endian signed length; -1 then an 8-byte
// length past 2 GiB), so a C++ process and a Python process exchange send_bytes/recv_bytes
// messages. Objects travel through mp::codec. A Connection is a cheap copyable handle: copies
// refer to the same open connection, which closes when the last copy goes (or on close()).
#pragma once

#include <mp/authkey.hpp>
#include <mp/codec.hpp>
#include <mp/exceptions.hpp>
#include <mp/handle.hpp>
#include <mp/time.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

namespace mp {

class Process;

// Python's OSError: a failure of the connection itself ("handle is closed", "bad message length").
class OSError : public std::system_error {
 public:
  OSError(std::errc code, const std::string& what) : std::system_error(std::make_error_code(code), what) {}
};

namespace detail {
struct ConnectionState;
}

class Connection {
 public:
  Connection() = default;  // a closed connection
  // Takes ownership of `handle` (a socket or pipe end).
  explicit Connection(native_handle_t handle, bool readable = true, bool writable = true);

  template <class T>
  void send(const T& obj) {
    detail::Encoder enc;
    enc(obj);
    if (!enc.handles().empty()) send_with_handles(enc);
    else send_message(enc.bytes());
  }
  template <class T>
  T recv() {
    static_assert(std::is_default_constructible_v<T>, "Connection::recv<T>: T must be default-constructible");
    Message m = recv_message();
    detail::Decoder dec(m.bytes, m.handle_view());
    T value{};
    try {
      dec(value);
    } catch (...) {
      m.claimed = dec.claimed();  // the objects that took handles closed them as they unwound
      throw;
    }
    m.claimed = dec.claimed();
    if (dec.remaining() != 0) throw DecodeError("Connection::recv: trailing bytes after the value");
    return value;
  }

  void send_bytes(std::span<const std::byte> buffer, std::size_t offset = 0, std::optional<std::size_t> size = {});
  void send_bytes(std::string_view buffer, std::size_t offset = 0, std::optional<std::size_t> size = {});
  // A message longer than maxlength: mp::OSError("bad message length") and the connection is no
  // longer readable (closed if it was read-only), as CPython.
  std::vector<std::byte> recv_bytes(std::optional<std::size_t> maxlength = {});
  // Reads the next message into buffer[offset...]; too short → mp::BufferTooShort with the message.
  std::size_t recv_bytes_into(std::span<std::byte> buffer, std::size_t offset = 0);
  // Whether a message (or EOF) is waiting; default: do not wait; empty timeout: wait for ever.
  bool poll(Timeout timeout = Seconds{0});

  native_handle_t fileno() const;
  void close();
  bool closed() const noexcept;
  bool readable() const noexcept;
  bool writable() const noexcept;

  // Same open connection?
  friend bool operator==(const Connection& a, const Connection& b) noexcept { return a.state_ == b.state_; }

  // Travel to a child (spawn/forkserver): the handle goes in the side table.
  void save(detail::Encoder& enc) const;
  void load(detail::Decoder& dec);

  // Internal: a received message and the handles that came with it; those no decoded object
  // claimed are closed with it.
  struct Message {
    std::vector<std::byte> bytes;
    std::vector<native_handle_t> handles;
    std::size_t claimed = 0;
    Message() = default;
    Message(Message&& o) noexcept
        : bytes(std::move(o.bytes)), handles(std::move(o.handles)), claimed(std::exchange(o.claimed, 0)) {
      o.handles.clear();
    }
    Message& operator=(Message&&) = delete;
    ~Message();
    std::span<const native_handle_t> handle_view() const { return handles; }
  };

 private:
  friend struct detail::ConnectionState;
  void send_message(std::span<const std::byte> bytes);
  void send_with_handles(detail::Encoder& enc);
  Message recv_message();
  detail::ConnectionState& open_state() const;
  std::shared_ptr<detail::ConnectionState> state_;
};

// (reader, writer) when duplex=false; two duplex ends otherwise.
std::pair<Connection, Connection> Pipe(bool duplex = true);

// Where a Listener listens: a Unix socket path (a leading '\0' makes a Linux abstract name), a TCP
// {host, port} (IPv4 or IPv6; port 0 picks one), or a Windows named pipe "\\.\pipe\name".
struct TcpAddress {
  std::string host;
  std::uint16_t port = 0;
  friend bool operator==(const TcpAddress&, const TcpAddress&) = default;
};
struct Address {
  std::variant<std::string, TcpAddress> value;
  Address() = default;
  Address(std::string path) : value(std::move(path)) {}
  Address(const char* path) : value(std::string(path)) {}
  Address(TcpAddress tcp) : value(std::move(tcp)) {}
  Address(std::string host, std::uint16_t port) : value(TcpAddress{std::move(host), port}) {}
  // "AF_UNIX", "AF_INET", "AF_INET6" or "AF_PIPE".
  std::string family() const;
  bool is_tcp() const noexcept { return std::holds_alternative<TcpAddress>(value); }
  const TcpAddress& tcp() const { return std::get<TcpAddress>(value); }
  const std::string& path() const { return std::get<std::string>(value); }
  friend bool operator==(const Address&, const Address&) = default;
  template <class A>
  void serialize(A& a) { a(value); }
};
std::ostream& operator<<(std::ostream& os, const Address& a);

// A free address of the family ("AF_UNIX": a path in a private temporary directory; "AF_INET":
// {"localhost", 0}; "AF_INET6": {"::1", 0}). Unknown family → mp::ValueError.
Address arbitrary_address(std::string_view family);
// The family a Listener uses when given no address: "AF_UNIX" on POSIX, "AF_PIPE" on Windows.
std::string default_family();

class Listener {
 public:
  // An empty address: arbitrary_address(default_family()).
  explicit Listener(std::optional<Address> address = {}, std::optional<AuthKey> authkey = {}, int backlog = 1);
  Listener(Listener&&) noexcept;
  Listener& operator=(Listener&&) noexcept;
  ~Listener();
  // Waits for a client; with an authkey, runs the challenge both ways before returning, so no
  // payload byte reaches the caller from an unauthenticated peer.
  Connection accept();
  void close();
  const Address& address() const;
  std::optional<Address> last_accepted() const;
  native_handle_t fileno() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Connection Client(const Address& address, std::optional<AuthKey> authkey = {});

void deliver_challenge(Connection& conn, const AuthKey& key);
void answer_challenge(Connection& conn, const AuthKey& key);

// Anything connection::wait can wait on: a Connection, a process sentinel, a raw handle.
class Waitable {
 public:
  Waitable(const Connection& c) : object_(c) {}
  Waitable(Sentinel s) : object_(s) {}
  Waitable(const Process& p);
  Waitable(native_handle_t h) : object_(h) {}
  native_handle_t handle() const;
  const Connection* connection() const noexcept { return std::get_if<Connection>(&object_); }
  std::optional<Sentinel> sentinel() const noexcept;
  friend bool operator==(const Waitable&, const Waitable&) = default;

 private:
  std::variant<Connection, Sentinel, native_handle_t> object_;
};

namespace connection {
// The objects that are ready (a message or EOF to read, a process ended), in the order given;
// empty on timeout. No limit on how many.
std::vector<Waitable> wait(const std::vector<Waitable>& objects, Timeout timeout = {});
template <class T>
  requires(!std::is_same_v<T, Waitable>)
std::vector<T> wait(const std::vector<T>& objects, Timeout timeout = {}) {
  std::vector<Waitable> w(objects.begin(), objects.end());
  std::vector<Waitable> ready = wait(w, timeout);
  std::vector<T> out;
  for (std::size_t i = 0, j = 0; i < w.size() && j < ready.size(); ++i) {
    if (w[i] == ready[j]) {
      out.push_back(objects[i]);
      ++j;
    }
  }
  return out;
}
using mp::Address;
using mp::Client;
using mp::Listener;
using mp::Pipe;
using mp::answer_challenge;
using mp::arbitrary_address;
using mp::deliver_challenge;
}  // namespace connection

namespace reduction {
// Sends an open handle over a Unix-socket Connection to another process (SCM_RIGHTS); `pid` is the
// receiver's (needed on Windows, where the handle is duplicated into it).
void send_handle(Connection& conn, native_handle_t handle, int pid);
// Receives one; the caller owns it.
native_handle_t recv_handle(Connection& conn);
}  // namespace reduction

namespace detail {
template <>
struct handle_type<Connection> : std::true_type {};
}  // namespace detail

}  // namespace mp
