// Listener/Client transports on Windows: named pipes (CPython's AF_PIPE, the default family) and
// TCP through Winsock. A named-pipe listener is not one handle but a name with a pending instance:
// the handle the caller holds is an event that keys this file's table of listeners.
#include "platform/socket.hpp"
#include "platform/error.hpp"
#include "platform/windows/pipe_io.hpp"
#include "platform/windows/win.hpp"
#include "random.hpp"

#include <ws2tcpip.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>

namespace mp::platform {

namespace {

struct PipeListener {
  std::mutex mutex;  // one accept at a time
  std::wstring name;
  UniqueHandle pending;  // the instance the next client connects to
};

struct Listeners {
  std::mutex mutex;
  std::map<native_handle, std::shared_ptr<PipeListener>> by_handle;
};
Listeners& listeners() {
  static auto* l = new Listeners;  // never destroyed: handles may close during static destruction
  return *l;
}

std::shared_ptr<PipeListener> listener_of(native_handle h) {
  auto& l = listeners();
  std::lock_guard lock(l.mutex);
  auto it = l.by_handle.find(h);
  return it == l.by_handle.end() ? nullptr : it->second;
}

UniqueHandle new_instance(const std::wstring& name, bool first) {
  DWORD mode = PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0);
  HANDLE x = CreateNamedPipeW(name.c_str(), mode, PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                              PIPE_UNLIMITED_INSTANCES, win::kPipeBuffer, win::kPipeBuffer, 0, nullptr);
  if (x == INVALID_HANDLE_VALUE) throw_last_error("CreateNamedPipeW(" + win::narrow(name) + ")");
  return UniqueHandle(x);
}

bool is_pipe_path(const std::string& p) { return p.rfind("\\\\.\\pipe\\", 0) == 0 || p.rfind("//./pipe/", 0) == 0; }

UniqueHandle make_socket(int family) {
  win::ensure_winsock();
  SOCKET s = WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, nullptr, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET) win::throw_error(static_cast<DWORD>(WSAGetLastError()), "WSASocketW");
  return UniqueHandle(reinterpret_cast<native_handle>(s));
}

SOCKET sock(native_handle h) { return reinterpret_cast<SOCKET>(h); }

struct AddrInfo {
  addrinfo* list = nullptr;
  AddrInfo(const std::string& host, std::uint16_t port, bool passive) {
    win::ensure_winsock();
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    if (passive) hints.ai_flags = AI_PASSIVE;
    std::string service = std::to_string(port);
    int r = getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &list);
    if (r != 0) win::throw_error(static_cast<DWORD>(r), "getaddrinfo(" + host + ")");
  }
  ~AddrInfo() {
    if (list) freeaddrinfo(list);
  }
};

std::string numeric_host(const sockaddr* a, int len, std::uint16_t* port) {
  char host[NI_MAXHOST] = {};
  char serv[NI_MAXSERV] = {};
  if (getnameinfo(a, len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0) return {};
  if (port) *port = static_cast<std::uint16_t>(std::atoi(serv));
  return host;
}

}  // namespace

// Called by close_handle for every handle: forgets a pipe listener's table entry with its handle.
void close_handle_listener_state(native_handle h) noexcept {
  std::shared_ptr<PipeListener> gone;
  {
    auto& l = listeners();
    std::lock_guard lock(l.mutex);
    auto it = l.by_handle.find(h);
    if (it == l.by_handle.end()) return;
    gone = std::move(it->second);
    l.by_handle.erase(it);
  }
  // A thread blocked in accept holds the instance: cancel its connect.
  if (gone->pending) CancelIoEx(win::h(gone->pending.get()), nullptr);
}

UniqueHandle listen_unix(const std::string& path, int) {
  if (!is_pipe_path(path))
    throw std::system_error(std::make_error_code(std::errc::address_family_not_supported),
                            "only named pipes (\\\\.\\pipe\\...) are local addresses on Windows: " + path);
  auto state = std::make_shared<PipeListener>();
  state->name = win::widen(path);
  state->pending = new_instance(state->name, true);
  HANDLE key = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  if (!key) throw_last_error("CreateEventW");
  UniqueHandle out(key);
  auto& l = listeners();
  std::lock_guard lock(l.mutex);
  l.by_handle[key] = std::move(state);
  return out;
}

UniqueHandle connect_unix(const std::string& path) {
  if (!is_pipe_path(path))
    throw std::system_error(std::make_error_code(std::errc::address_family_not_supported),
                            "only named pipes (\\\\.\\pipe\\...) are local addresses on Windows: " + path);
  std::wstring name = win::widen(path);
  for (int attempt = 0;; ++attempt) {
    HANDLE x = CreateFileW(name.c_str(), GENERIC_READ | GENERIC_WRITE, 0, nullptr, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, nullptr);
    if (x != INVALID_HANDLE_VALUE) return UniqueHandle(x);
    DWORD e = GetLastError();
    // Every instance is busy (a client got there between two accepts): wait for the next one.
    if (e == ERROR_PIPE_BUSY && attempt < 200) {
      WaitNamedPipeW(name.c_str(), 100);
      continue;
    }
    win::throw_error(e, "CreateFileW(" + path + ")");
  }
}

UniqueHandle listen_local(std::string& address, int backlog) {
  address = "\\\\.\\pipe\\mp-" + std::to_string(GetCurrentProcessId()) + "-" + detail::random_token(16);
  return listen_unix(address, backlog);
}

UniqueHandle connect_local(const std::string& address) { return connect_unix(address); }

void remove_local_address(const std::string&) noexcept {}  // a pipe name goes with its last instance
void remove_local_address_directory(const std::string&) noexcept {}  // pipe names have no directory

UniqueHandle listen_tcp(const std::string& host, std::uint16_t port, int backlog, std::uint16_t& bound_port,
                        std::string& bound_host) {
  AddrInfo ai(host, port, true);
  DWORD last = 0;
  for (addrinfo* a = ai.list; a; a = a->ai_next) {
    UniqueHandle s = make_socket(a->ai_family);
    BOOL exclusive = TRUE;  // no other socket may bind the port under us (SO_REUSEADDR differs here)
    setsockopt(sock(s.get()), SOL_SOCKET, SO_EXCLUSIVEADDRUSE, reinterpret_cast<const char*>(&exclusive), sizeof exclusive);
    if (bind(sock(s.get()), a->ai_addr, static_cast<int>(a->ai_addrlen)) != 0 ||
        listen(sock(s.get()), backlog > 0 ? backlog : 1) != 0) {
      last = static_cast<DWORD>(WSAGetLastError());
      continue;
    }
    sockaddr_storage got{};
    int len = sizeof got;
    getsockname(sock(s.get()), reinterpret_cast<sockaddr*>(&got), &len);
    bound_host = numeric_host(reinterpret_cast<sockaddr*>(&got), len, &bound_port);
    return s;
  }
  win::throw_error(last ? last : static_cast<DWORD>(WSAEADDRNOTAVAIL), "bind(" + host + ":" + std::to_string(port) + ")");
}

UniqueHandle connect_tcp(const std::string& host, std::uint16_t port) {
  AddrInfo ai(host, port, false);
  DWORD last = 0;
  for (addrinfo* a = ai.list; a; a = a->ai_next) {
    UniqueHandle s = make_socket(a->ai_family);
    if (connect(sock(s.get()), a->ai_addr, static_cast<int>(a->ai_addrlen)) == 0) {
      BOOL one = TRUE;
      setsockopt(sock(s.get()), IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof one);
      return s;
    }
    last = static_cast<DWORD>(WSAGetLastError());
  }
  win::throw_error(last ? last : static_cast<DWORD>(WSAECONNREFUSED), "connect(" + host + ":" + std::to_string(port) + ")");
}

UniqueHandle accept_connection(native_handle listener, PeerAddress* peer) {
  if (auto state = listener_of(listener)) {
    std::lock_guard lock(state->mutex);
    if (!state->pending) throw std::system_error(std::make_error_code(std::errc::bad_file_descriptor), "listener closed");
    OVERLAPPED ov{};
    ov.hEvent = win::thread_event();
    HANDLE inst = win::h(state->pending.get());
    if (!ConnectNamedPipe(inst, &ov)) {
      DWORD e = GetLastError();
      if (e == ERROR_IO_PENDING) {
        DWORD n = 0;
        if (!GetOverlappedResult(inst, &ov, &n, TRUE)) {
          DWORD e2 = GetLastError();
          if (e2 == ERROR_OPERATION_ABORTED)
            throw std::system_error(std::make_error_code(std::errc::bad_file_descriptor), "listener closed");
          win::throw_error(e2, "ConnectNamedPipe");
        }
      } else if (e != ERROR_PIPE_CONNECTED) {
        win::throw_error(e, "ConnectNamedPipe");
      }
    }
    UniqueHandle connected = std::move(state->pending);
    state->pending = new_instance(state->name, false);
    if (peer) {
      peer->tcp = false;
      peer->host_or_path = win::narrow(state->name);
    }
    return connected;
  }
  sockaddr_storage from{};
  int len = sizeof from;
  SOCKET s = accept(sock(listener), reinterpret_cast<sockaddr*>(&from), &len);
  if (s == INVALID_SOCKET) win::throw_error(static_cast<DWORD>(WSAGetLastError()), "accept");
  UniqueHandle out(reinterpret_cast<native_handle>(s));
  SetHandleInformation(reinterpret_cast<HANDLE>(s), HANDLE_FLAG_INHERIT, 0);
  BOOL one = TRUE;
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof one);
  if (peer) {
    peer->tcp = true;
    peer->host_or_path = numeric_host(reinterpret_cast<sockaddr*>(&from), len, &peer->port);
  }
  return out;
}

void set_receive_timeout(native_handle socket, double seconds) {
  if (!win::is_socket(win::h(socket))) return;  // pipes: reads are not bounded (only the forkserver asks)
  DWORD ms = static_cast<DWORD>(seconds * 1000);
  setsockopt(sock(socket), SOL_SOCKET, SO_RCVTIMEO, reinterpret_cast<const char*>(&ms), sizeof ms);
}

bool is_socket(native_handle h) noexcept { return win::is_socket(win::h(h)); }

namespace {
std::mutex g_temp_mutex;
std::string g_temp_dir;
}  // namespace

std::string private_temp_dir() {
  std::lock_guard lock(g_temp_mutex);
  if (g_temp_dir.empty()) {
    wchar_t base[MAX_PATH + 1];
    DWORD n = GetTempPathW(MAX_PATH + 1, base);
    if (n == 0) throw_last_error("GetTempPathW");
    std::string d = win::narrow(base, n) + "mp-" + std::to_string(GetCurrentProcessId()) + "-" + detail::random_token(8);
    if (!CreateDirectoryW(win::widen(d).c_str(), nullptr)) throw_last_error("CreateDirectoryW(" + d + ")");
    g_temp_dir = d;
  }
  return g_temp_dir;
}

void remove_private_temp_dir() noexcept {
  std::lock_guard lock(g_temp_mutex);
  if (g_temp_dir.empty()) return;
  try {
    if (RemoveDirectoryW(win::widen(g_temp_dir).c_str())) g_temp_dir.clear();  // fails while not empty
  } catch (...) {
  }
}

bool abstract_sockets_available() noexcept { return false; }

}  // namespace mp::platform
