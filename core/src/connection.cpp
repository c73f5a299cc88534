// Connection, Pipe, Listener, Client, wait (CPython's connection.py).
#include <mp/connection.hpp>
#include <mp/process.hpp>

#include "platform/handle_passing.hpp"
#include "platform/pipe.hpp"
#include "platform/unique_handle.hpp"
#include "platform/socket.hpp"
#include "platform/wait.hpp"
#include "random.hpp"
#include "wire.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <mutex>
#include <ostream>

namespace mp::detail {

// Reads go through a read-ahead buffer, so a small message costs one system call; a large payload
// is read straight into its destination. Handles that arrive (SCM_RIGHTS) wait in `pending` until
// a decoded object claims them.
struct ConnectionState {
  static constexpr std::size_t kBufferSize = 64 * 1024;

  platform::UniqueHandle handle;
  platform::HandleKind kind = platform::HandleKind::unknown;  // socket or pipe: no probing per call
  bool large = false;  // the last message was large: read the next header without reading ahead
  bool readable = true;
  bool writable = true;
  std::mutex read_mutex;
  std::mutex write_mutex;
  std::vector<std::byte> rbuf;
  std::size_t rpos = 0;
  std::size_t rend = 0;
  // A handle arrives with the read that first touches the bytes it was sent with, so it is tagged
  // with the stream offset of that read's last byte: it belongs to the message holding that byte.
  struct Pending {
    platform::UniqueHandle handle;
    std::uint64_t at;
  };
  std::deque<Pending> pending;
  std::uint64_t read_total = 0;  // bytes read from the handle so far

  static ConnectionState* of(const Connection& c) noexcept { return c.state_.get(); }

  std::size_t buffered() const noexcept { return rend - rpos; }
  std::uint64_t consumed() const noexcept { return read_total - buffered(); }

  void adopt(native_handle_t h) {
    handle.reset(h);
    kind = platform::kind_of(h);
  }

  std::size_t read_into(std::byte* p, std::size_t n) {
    std::size_t r;
    if (kind == platform::HandleKind::socket) {
      std::vector<platform::UniqueHandle> got;
      r = platform::recv_some_with_handles(handle.get(), {p, n}, got);
      for (auto& h : got) pending.push_back({std::move(h), read_total + r - 1});
    } else {
      r = platform::read_some(handle.get(), {p, n});
    }
    read_total += r;
    return r;
  }

  // The handles sent with the message that occupied stream bytes [start, end); older unclaimed
  // ones (sent with messages read as bytes) are closed.
  std::vector<native_handle_t> take_handles(std::uint64_t start, std::uint64_t end) {
    std::vector<native_handle_t> out;
    while (!pending.empty() && pending.front().at < end) {
      if (pending.front().at >= start) out.push_back(pending.front().handle.release());
      pending.pop_front();
    }
    return out;
  }

  // Reads more into the buffer (at most `most` bytes); false at end of file.
  bool fill(std::size_t most = kBufferSize) {
    if (rpos == rend) {
      rpos = rend = 0;
    } else if (rpos > 0) {
      std::memmove(rbuf.data(), rbuf.data() + rpos, rend - rpos);
      rend -= rpos;
      rpos = 0;
    }
    if (rbuf.size() < kBufferSize) rbuf.resize(kBufferSize);
    std::size_t n = read_into(rbuf.data() + rend, std::min(most, rbuf.size() - rend));
    rend += n;
    return n > 0;
  }

  void need(std::size_t n, bool at_message_start) {
    while (buffered() < n) {
      // After a large message the next one is likely large too: take just its header, so the
      // body goes straight to its destination instead of through the read-ahead buffer.
      if (!fill(large ? n - buffered() : kBufferSize)) {
        if (at_message_start && buffered() == 0) throw EOFError("connection closed by the peer");
        throw OSError(std::errc::connection_reset, "got end of file during message");
      }
    }
  }

  // Where handles travel as values (Windows), a message carrying them is preceded by a block the
  // CPython framing cannot contain (length -2): the count, then (holder pid, value) per handle.
  static constexpr std::int32_t kHandleBlock = -2;
  static constexpr std::size_t kHandleEntry = 12;

  void read_handle_block() {
    need(4, false);
    const auto* p = reinterpret_cast<const unsigned char*>(rbuf.data() + rpos);
    std::uint32_t count = 0;
    for (int i = 0; i < 4; ++i) count = (count << 8) | p[i];
    if (count == 0 || count > 1024) throw OSError(std::errc::bad_message, "bad handle block");
    rpos += 4;
    need(count * kHandleEntry, false);
    std::vector<platform::ExportedHandle> values(count);
    for (std::uint32_t k = 0; k < count; ++k) {
      p = reinterpret_cast<const unsigned char*>(rbuf.data() + rpos + k * kHandleEntry);
      std::uint32_t pid = 0;
      std::uint64_t v = 0;
      for (int i = 0; i < 4; ++i) pid = (pid << 8) | p[i];
      for (int i = 4; i < 12; ++i) v = (v << 8) | p[i];
      values[k] = {static_cast<int>(pid), v};
    }
    rpos += count * kHandleEntry;
    // They belong to the frame that follows: tag them with its first byte's offset.
    for (auto& v : values) pending.push_back({platform::import_handle(v), consumed()});
  }

  static void append_handle_block(std::vector<std::byte>& out, std::span<const native_handle_t> handles, int target_pid) {
    auto put = [&out](std::uint64_t v, int bytes) {
      for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xff));
    };
    put(static_cast<std::uint32_t>(kHandleBlock), 4);
    put(handles.size(), 4);
    for (native_handle_t h : handles) {
      platform::ExportedHandle e = platform::export_handle(h, target_pid);
      put(static_cast<std::uint32_t>(e.holder_pid), 4);
      put(e.value, 8);
    }
  }

  // The next frame's length (CPython's framing); a negative length other than -1 is an error.
  std::uint64_t read_header() {
    need(4, true);
    const auto* p = reinterpret_cast<const unsigned char*>(rbuf.data() + rpos);
    std::int32_t small = static_cast<std::int32_t>((std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                                                   (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]});
    if (small >= 0) {
      rpos += 4;
      return static_cast<std::uint64_t>(small);
    }
    if (small == kHandleBlock && platform::handles_travel_as_values()) {
      rpos += 4;
      read_handle_block();
      return read_header();
    }
    if (small != -1) throw OSError(std::errc::bad_message, "bad message length");
    need(12, false);
    p = reinterpret_cast<const unsigned char*>(rbuf.data() + rpos + 4);
    std::uint64_t size = 0;
    for (int i = 0; i < 8; ++i) size = (size << 8) | p[i];
    rpos += 12;
    return size;
  }

  void read_payload(std::byte* dst, std::uint64_t size) {
    large = size >= kBufferSize / 2;
    std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(buffered(), size));
    if (take) std::memcpy(dst, rbuf.data() + rpos, take);
    rpos += take;
    dst += take;
    size -= take;
    while (size > 0) {
      // Large messages (and the tails of them) are read straight into place; small ones through
      // the read-ahead buffer, which usually brings the next header along in the same call.
      if (large || size >= kBufferSize / 2) {
        std::size_t n = read_into(dst, static_cast<std::size_t>(std::min<std::uint64_t>(size, 1u << 30)));
        if (n == 0) throw OSError(std::errc::connection_reset, "got end of file during message");
        dst += n;
        size -= n;
      } else {
        need(1, false);
        take = static_cast<std::size_t>(std::min<std::uint64_t>(buffered(), size));
        std::memcpy(dst, rbuf.data() + rpos, take);
        rpos += take;
        dst += take;
        size -= take;
      }
    }
  }

  // A whole message body. A length field is the peer's word: at most kTrustedUpfront bytes are
  // allocated before the bytes arrive; past that the buffer grows as they do, so a lying header
  // cannot make us allocate more than twice what was really sent.
  static constexpr std::uint64_t kTrustedUpfront = 64ull << 20;
  static constexpr std::uint64_t kHugeThreshold = 8ull << 20;
  std::vector<std::byte> read_body(std::uint64_t size) {
    std::vector<std::byte> out;
    if (size <= kTrustedUpfront) {
      if (size >= kHugeThreshold) {
        // A fresh large buffer: huge pages make its first touch 512 times fewer page faults.
        out.reserve(static_cast<std::size_t>(size));
        platform::advise_huge_pages(out.data(), static_cast<std::size_t>(size));
      }
      out.resize(static_cast<std::size_t>(size));
      read_payload(out.data(), size);
      return out;
    }
    out.resize(static_cast<std::size_t>(kTrustedUpfront));
    std::uint64_t have = 0;
    while (have < size) {
      if (have == out.size()) out.resize(static_cast<std::size_t>(std::min<std::uint64_t>(size, 2 * out.size())));
      std::uint64_t chunk = out.size() - have;
      read_payload(out.data() + have, chunk);
      have += chunk;
    }
    return out;
  }

  void bad_message_length() {
    // As CPython: a writable connection stops being readable, a read-only one is closed.
    if (writable) readable = false;
    else handle.reset();
    throw OSError(std::errc::message_size, "bad message length");
  }
};

namespace {
class ConnectionChannel final : public MessageChannel {
 public:
  explicit ConnectionChannel(Connection& c) : c_(c) {}
  void send(std::span<const std::byte> m) override { c_.send_bytes(m); }
  std::vector<std::byte> recv(std::size_t maxlength) override { return c_.recv_bytes(maxlength); }

 private:
  Connection& c_;
};
}  // namespace

}  // namespace mp::detail

namespace mp {

using detail::ConnectionState;

Connection::Connection(native_handle_t handle, bool readable, bool writable) {
  if (handle == invalid_native_handle) throw ValueError("invalid handle");
  if (!readable && !writable) throw ValueError("at least one of `readable` and `writable` must be True");
  state_ = std::make_shared<ConnectionState>();
  state_->adopt(handle);
  state_->readable = readable;
  state_->writable = writable;
}

ConnectionState& Connection::open_state() const {
  if (!state_ || !state_->handle) throw OSError(std::errc::bad_file_descriptor, "handle is closed");
  return *state_;
}

namespace {
ConnectionState& writable_state(const Connection& c, ConnectionState& s) {
  (void)c;
  if (!s.writable) throw OSError(std::errc::operation_not_permitted, "connection is read-only");
  return s;
}
void check_readable(ConnectionState& s) {
  if (!s.readable) throw OSError(std::errc::operation_not_permitted, "connection is write-only");
}
}  // namespace

void Connection::send_message(std::span<const std::byte> bytes) {
  ConnectionState& s = writable_state(*this, open_state());
  std::lock_guard lock(s.write_mutex);
  detail::send_frame(s.handle.get(), bytes, s.kind);
}

void Connection::send_with_handles(detail::Encoder& enc) {
  ConnectionState& s = writable_state(*this, open_state());
  if (platform::handles_travel_as_values()) {
    const std::vector<std::byte>& payload = enc.bytes();
    if (payload.size() > 0x7fffffff) throw ValueError("a message carrying handles must be under 2 GiB");
    std::vector<std::byte> head;
    ConnectionState::append_handle_block(head, enc.handles(), 0);
    std::uint32_t n = static_cast<std::uint32_t>(payload.size());
    for (int i = 0; i < 4; ++i) head.push_back(static_cast<std::byte>((n >> (24 - 8 * i)) & 0xff));
    std::lock_guard lock(s.write_mutex);
    platform::write_all2(s.handle.get(), head, payload, s.kind);
    return;
  }
  if (s.kind != platform::HandleKind::socket) {
    throw ValueError("handles (Connections, locks, ...) can only be sent over a socket connection such as "
                     "Pipe(duplex=true); pass them to the child as Process arguments instead");
  }
  const std::vector<std::byte>& payload = enc.bytes();
  std::vector<std::byte> frame;
  if (payload.size() > 0x7fffffff) throw ValueError("a message carrying handles must be under 2 GiB");
  frame.resize(4 + payload.size());
  std::uint32_t n = static_cast<std::uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) frame[static_cast<std::size_t>(i)] = static_cast<std::byte>((n >> (24 - 8 * i)) & 0xff);
  if (!payload.empty()) std::memcpy(frame.data() + 4, payload.data(), payload.size());
  std::lock_guard lock(s.write_mutex);
  platform::send_handles(s.handle.get(), frame, enc.handles());
}

Connection::Message Connection::recv_message() {
  ConnectionState& s = open_state();
  check_readable(s);
  std::lock_guard lock(s.read_mutex);
  std::uint64_t start = s.consumed();
  std::uint64_t size = s.read_header();
  Message m;
  m.bytes = s.read_body(size);
  if (!s.pending.empty()) m.handles = s.take_handles(start, s.consumed());
  return m;
}

Connection::Message::~Message() {
  for (std::size_t i = claimed; i < handles.size(); ++i) platform::close_handle(handles[i]);
}

void Connection::send_bytes(std::span<const std::byte> buffer, std::size_t offset, std::optional<std::size_t> size) {
  open_state();
  if (buffer.size() < offset) throw ValueError("buffer length < offset");
  std::size_t n = size ? *size : buffer.size() - offset;
  if (size && offset + *size > buffer.size()) throw ValueError("buffer length < offset + size");
  send_message(buffer.subspan(offset, n));
}

void Connection::send_bytes(std::string_view buffer, std::size_t offset, std::optional<std::size_t> size) {
  send_bytes(std::span<const std::byte>(reinterpret_cast<const std::byte*>(buffer.data()), buffer.size()), offset, size);
}

std::vector<std::byte> Connection::recv_bytes(std::optional<std::size_t> maxlength) {
  ConnectionState& s = open_state();
  check_readable(s);
  std::lock_guard lock(s.read_mutex);
  std::uint64_t size = s.read_header();
  if (maxlength && size > *maxlength) s.bad_message_length();
  return s.read_body(size);
}

std::size_t Connection::recv_bytes_into(std::span<std::byte> buffer, std::size_t offset) {
  ConnectionState& s = open_state();
  check_readable(s);
  if (offset > buffer.size()) throw ValueError("offset too large");
  std::lock_guard lock(s.read_mutex);
  std::uint64_t size = s.read_header();
  if (size > buffer.size() - offset) throw BufferTooShort(s.read_body(size));
  s.read_payload(buffer.data() + offset, size);
  return static_cast<std::size_t>(size);
}

bool Connection::poll(Timeout timeout) {
  ConnectionState& s = open_state();
  check_readable(s);
  if (s.buffered() > 0) return true;
  native_handle_t h = s.handle.get();
  return !platform::wait_ready(std::span(&h, 1), timeout).empty();
}

native_handle_t Connection::fileno() const { return open_state().handle.get(); }

void Connection::close() {
  if (state_) state_->handle.reset();
}

bool Connection::closed() const noexcept { return !state_ || !state_->handle; }
bool Connection::readable() const noexcept { return state_ && state_->readable; }
bool Connection::writable() const noexcept { return state_ && state_->writable; }

void Connection::save(detail::Encoder& enc) const {
  ConnectionState& s = open_state();
  std::uint32_t index = enc.add_handle(s.handle.get());
  // Bytes already read ahead belong to the receiver of the connection too.
  std::vector<std::byte> ahead(s.rbuf.begin() + static_cast<std::ptrdiff_t>(s.rpos),
                               s.rbuf.begin() + static_cast<std::ptrdiff_t>(s.rend));
  enc(index, s.readable, s.writable, ahead);
}

void Connection::load(detail::Decoder& dec) {
  std::uint32_t index = 0;
  bool readable = true, writable = true;
  std::vector<std::byte> ahead;
  dec(index, readable, writable, ahead);
  state_ = dec.shared_object<ConnectionState>(index, [&](native_handle_t h) {
    auto st = std::make_shared<ConnectionState>();
    st->adopt(h);
    st->readable = readable;
    st->writable = writable;
    if (!ahead.empty()) {
      st->rbuf = std::move(ahead);
      st->rend = st->rbuf.size();
    }
    return st;
  });
}

std::pair<Connection, Connection> Pipe(bool duplex) {
  if (duplex) {
    platform::HandlePair p = platform::make_socketpair();
    return {Connection(p.first.release()), Connection(p.second.release())};
  }
  platform::HandlePair p = platform::make_pipe();
  return {Connection(p.first.release(), true, false), Connection(p.second.release(), false, true)};
}

// ---- addresses ------------------------------------------------------------------------------
std::string Address::family() const {
  if (is_tcp()) return tcp().host.find(':') != std::string::npos ? "AF_INET6" : "AF_INET";
  const std::string& p = path();
  if (p.rfind("\\\\", 0) == 0) return "AF_PIPE";
  return "AF_UNIX";
}

std::ostream& operator<<(std::ostream& os, const Address& a) {
  if (a.is_tcp()) {
    const TcpAddress& t = a.tcp();
    if (t.host.find(':') != std::string::npos) return os << '[' << t.host << "]:" << t.port;
    return os << t.host << ':' << t.port;
  }
  const std::string& p = a.path();
  if (!p.empty() && p[0] == '\0') return os << "@" << p.substr(1);  // abstract name
  return os << p;
}

std::string default_family() {
#if defined(_WIN32)
  return "AF_PIPE";
#else
  return "AF_UNIX";
#endif
}

Address arbitrary_address(std::string_view family) {
  if (family == "AF_INET") return TcpAddress{"localhost", 0};
  if (family == "AF_INET6") return TcpAddress{"::1", 0};
  if (family == "AF_UNIX") return platform::private_temp_dir() + "/sock-" + detail::random_token(12);
  if (family == "AF_PIPE") {
#if defined(_WIN32)
    return "\\\\.\\pipe\\mp-" + detail::random_token(16);
#else
    throw ValueError("Family AF_PIPE is not recognized.");
#endif
  }
  throw ValueError("unrecognized family '" + std::string(family) + "'");
}

namespace {
void check_family(const Address& a) {
  std::string f = a.family();
#if !defined(_WIN32)
  if (f == "AF_PIPE") throw ValueError("Family AF_PIPE is not recognized.");
#endif
  if (!a.is_tcp() && a.path().empty()) throw ValueError("empty socket path");
}
}  // namespace

// ---- Listener / Client ------------------------------------------------------------------------
struct Listener::Impl {
  platform::UniqueHandle socket;
  Address address;
  std::optional<AuthKey> authkey;
  std::optional<Address> last_accepted;
  bool unlink_on_close = false;
};

Listener::Listener(std::optional<Address> address, std::optional<AuthKey> authkey, int backlog)
    : impl_(std::make_unique<Impl>()) {
  Address a = address ? *address : arbitrary_address(default_family());
  check_family(a);
  if (a.is_tcp()) {
    std::uint16_t port = 0;
    std::string host;
    impl_->socket = platform::listen_tcp(a.tcp().host, a.tcp().port, backlog, port, host);
    impl_->address = TcpAddress{host.empty() ? a.tcp().host : host, port};
  } else {
    impl_->socket = platform::listen_unix(a.path(), backlog);
    impl_->address = a;
    impl_->unlink_on_close = a.path()[0] != '\0';
  }
  impl_->authkey = std::move(authkey);
}

Listener::Listener(Listener&&) noexcept = default;
Listener& Listener::operator=(Listener&&) noexcept = default;
Listener::~Listener() { close(); }

Connection Listener::accept() {
  if (!impl_ || !impl_->socket) throw OSError(std::errc::bad_file_descriptor, "listener is closed");
  platform::PeerAddress peer;
  Connection c(platform::accept_connection(impl_->socket.get(), &peer).release());
  if (peer.tcp) impl_->last_accepted = Address(TcpAddress{peer.host_or_path, peer.port});
  else impl_->last_accepted = Address(peer.host_or_path);
  if (impl_->authkey) {
    deliver_challenge(c, *impl_->authkey);
    answer_challenge(c, *impl_->authkey);
  }
  return c;
}

void Listener::close() {
  if (!impl_ || !impl_->socket) return;
  impl_->socket.reset();
  if (impl_->unlink_on_close) platform::remove_local_address(impl_->address.path());
}

const Address& Listener::address() const {
  if (!impl_) throw OSError(std::errc::bad_file_descriptor, "listener is closed");
  return impl_->address;
}

std::optional<Address> Listener::last_accepted() const { return impl_ ? impl_->last_accepted : std::nullopt; }

native_handle_t Listener::fileno() const {
  if (!impl_ || !impl_->socket) throw OSError(std::errc::bad_file_descriptor, "listener is closed");
  return impl_->socket.get();
}

Connection Client(const Address& address, std::optional<AuthKey> authkey) {
  check_family(address);
  platform::UniqueHandle h = address.is_tcp() ? platform::connect_tcp(address.tcp().host, address.tcp().port)
                                              : platform::connect_unix(address.path());
  Connection c(h.release());
  if (authkey) {
    answer_challenge(c, *authkey);
    deliver_challenge(c, *authkey);
  }
  return c;
}

void deliver_challenge(Connection& conn, const AuthKey& key) {
  detail::ConnectionChannel ch(conn);
  detail::deliver_challenge(ch, key);
}

void answer_challenge(Connection& conn, const AuthKey& key) {
  detail::ConnectionChannel ch(conn);
  detail::answer_challenge(ch, key);
}

// ---- wait -----------------------------------------------------------------------------------
Waitable::Waitable(const Process& p) : object_(p.sentinel()) {}

native_handle_t Waitable::handle() const {
  if (const Connection* c = std::get_if<Connection>(&object_)) return c->fileno();
  if (const Sentinel* s = std::get_if<Sentinel>(&object_)) return s->handle;
  return std::get<native_handle_t>(object_);
}

std::optional<Sentinel> Waitable::sentinel() const noexcept {
  if (const Sentinel* s = std::get_if<Sentinel>(&object_)) return *s;
  return std::nullopt;
}

namespace connection {

std::vector<Waitable> wait(const std::vector<Waitable>& objects, Timeout timeout) {
  std::vector<Waitable> ready;
  // A message already read ahead is ready now, whatever the handle says.
  for (const Waitable& w : objects) {
    const Connection* c = w.connection();
    if (c == nullptr || c->closed()) continue;
    ConnectionState* s = ConnectionState::of(*c);
    // A reader holding the lock is mid-message; the handle will tell.
    std::unique_lock lock(s->read_mutex, std::try_to_lock);
    if (lock && s->buffered() > 0) ready.push_back(w);
  }
  if (!ready.empty()) return ready;
  std::vector<native_handle_t> handles;
  handles.reserve(objects.size());
  for (const Waitable& w : objects) handles.push_back(w.handle());
  for (std::size_t i : platform::wait_ready(handles, timeout)) ready.push_back(objects[i]);
  return ready;
}

}  // namespace connection

// ---- handles over a connection -----------------------------------------------------------------
namespace reduction {

void send_handle(Connection& conn, native_handle_t handle, int pid) {
  // CPython's sendfds: one byte (the count) with the descriptor attached.
  std::array<std::byte, 1> one{std::byte{1}};
  std::array<native_handle_t, 1> hs{handle};
  if (platform::handles_travel_as_values()) {
    // Duplicated straight into the receiver (CPython's DupHandle with the destination pid).
    std::vector<std::byte> head;
    ConnectionState::append_handle_block(head, hs, pid);
    ConnectionState* s = ConnectionState::of(conn);
    conn.fileno();  // closed → OSError
    std::lock_guard lock(s->write_mutex);
    platform::write_all2(s->handle.get(), head, one, s->kind);
    return;
  }
  platform::send_handles(conn.fileno(), one, hs);
}

native_handle_t recv_handle(Connection& conn) {
  ConnectionState* s = ConnectionState::of(conn);
  conn.fileno();  // closed → OSError
  std::lock_guard lock(s->read_mutex);
  std::uint64_t start = s->consumed();
  if (platform::handles_travel_as_values()) {
    s->need(4, true);
    const auto* p = reinterpret_cast<const unsigned char*>(s->rbuf.data() + s->rpos);
    if (p[0] != 0xff || p[1] != 0xff || p[2] != 0xff || p[3] != 0xfe)
      throw OSError(std::errc::bad_message, "recv_handle: no handle came with the message");
    s->rpos += 4;
    s->read_handle_block();
  }
  s->need(1, true);
  s->rpos += 1;  // the count byte
  std::vector<native_handle_t> got = s->take_handles(start, s->consumed());
  if (got.empty()) throw OSError(std::errc::bad_message, "recv_handle: no handle came with the message");
  for (std::size_t i = 1; i < got.size(); ++i) platform::close_handle(got[i]);
  return got[0];
}

}  // namespace reduction

}  // namespace mp
