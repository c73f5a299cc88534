#include "platform/socket.hpp"
#include "platform/error.hpp"
#include "core/src/random.hpp"
#include "mp_config.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

namespace mp::platform {

namespace {
UniqueHandle make_socket(int family) {
#if MP_HAVE_ATOMIC_CLOEXEC
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
#else
  int fd = ::socket(family, SOCK_STREAM, 0);
  if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
  if (fd < 0) throw_last_error("socket");
  return UniqueHandle(fd);
}

socklen_t fill_unix(sockaddr_un& a, const std::string& address) {
  std::memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  if (address.empty() || address.size() >= sizeof a.sun_path) {
    throw std::system_error(std::make_error_code(std::errc::filename_too_long),
                            "unix socket address empty or longer than " + std::to_string(sizeof a.sun_path - 1));
  }
  std::memcpy(a.sun_path, address.data(), address.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() + (address[0] == '\0' ? 0 : 1));
}

int connect_retrying(int fd, const sockaddr* a, socklen_t len) {
  int r;
  do r = ::connect(fd, a, len);
  while (r < 0 && errno == EINTR);
  return r;
}

struct AddrInfo {
  addrinfo* list = nullptr;
  AddrInfo(const std::string& host, std::uint16_t port, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    std::string service = std::to_string(port);
    int e = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &list);
    if (e != 0) {
      throw std::system_error(std::make_error_code(std::errc::address_not_available),
                              "getaddrinfo(" + host + "): " + ::gai_strerror(e));
    }
  }
  ~AddrInfo() {
    if (list) ::freeaddrinfo(list);
  }
};

std::string numeric_host(const sockaddr* a, socklen_t len, std::uint16_t* port) {
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
  if (::getnameinfo(a, len, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0) return {};
  if (port) *port = static_cast<std::uint16_t>(std::atoi(serv));
  return host;
}

std::mutex g_temp_mutex;
std::string g_temp_dir;
int g_temp_dir_pid = 0;  // the process that made it: a forked child makes its own
void remove_temp_dir() { remove_private_temp_dir(); }
}  // namespace

bool abstract_sockets_available() noexcept { return MP_HAVE_ABSTRACT_SOCKETS != 0; }

std::string private_temp_dir() {
  std::lock_guard lock(g_temp_mutex);
  if (g_temp_dir.empty() || g_temp_dir_pid != ::getpid()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/mp-" + detail::random_token(10);
    if (::mkdir(dir.c_str(), 0700) < 0) throw_last_error("mkdir " + dir);
    g_temp_dir = dir;
    g_temp_dir_pid = ::getpid();
    static const bool registered = std::atexit(&remove_temp_dir) == 0;
    (void)registered;
  }
  return g_temp_dir;
}

void remove_private_temp_dir() noexcept {
  std::lock_guard lock(g_temp_mutex);
  if (g_temp_dir.empty() || g_temp_dir_pid != ::getpid()) return;
  if (::rmdir(g_temp_dir.c_str()) == 0) g_temp_dir.clear();  // fails while anything is left in it
}

UniqueHandle listen_unix(const std::string& path, int backlog) {
  UniqueHandle s = make_socket(AF_UNIX);
  sockaddr_un a;
  socklen_t len = fill_unix(a, path);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), len) < 0) throw_last_error("bind(AF_UNIX, " + path + ")");
  if (::listen(s.get(), backlog) < 0) throw_last_error("listen");
  return s;
}

UniqueHandle connect_unix(const std::string& path) {
  UniqueHandle s = make_socket(AF_UNIX);
  sockaddr_un a;
  socklen_t len = fill_unix(a, path);
  if (connect_retrying(s.get(), reinterpret_cast<sockaddr*>(&a), len) < 0) throw_last_error("connect(AF_UNIX)");
  return s;
}

UniqueHandle listen_local(std::string& address, int backlog) {
#if MP_HAVE_ABSTRACT_SOCKETS
  address = std::string(1, '\0') + "mp-" + detail::random_token(16);
#else
  address = private_temp_dir() + "/srv-" + detail::random_token(8);
#endif
  return listen_unix(address, backlog);
}

UniqueHandle connect_local(const std::string& address) { return connect_unix(address); }

void remove_local_address(const std::string& address) noexcept {
  if (address.empty() || address[0] == '\0') return;
  ::unlink(address.c_str());
}

void remove_local_address_directory(const std::string& address) noexcept {
  if (address.empty() || address[0] == '\0') return;
  auto slash = address.rfind('/');
  if (slash == std::string::npos || slash == 0) return;
  ::rmdir(address.substr(0, slash).c_str());  // fails, harmlessly, while anything is left in it
}

UniqueHandle listen_tcp(const std::string& host, std::uint16_t port, int backlog, std::uint16_t& bound_port,
                        std::string& bound_host) {
  AddrInfo ai(host, port, true);
  std::error_code last = std::make_error_code(std::errc::address_not_available);
  for (addrinfo* p = ai.list; p; p = p->ai_next) {
    UniqueHandle s = make_socket(p->ai_family);
    int one = 1;
    ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(s.get(), p->ai_addr, p->ai_addrlen) < 0 || ::listen(s.get(), backlog) < 0) {
      last = last_error();
      continue;
    }
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&ss), &len);
    bound_host = numeric_host(reinterpret_cast<sockaddr*>(&ss), len, &bound_port);
    return s;
  }
  throw std::system_error(last, "listen on " + host + ":" + std::to_string(port));
}

UniqueHandle connect_tcp(const std::string& host, std::uint16_t port) {
  AddrInfo ai(host, port, false);
  std::error_code last = std::make_error_code(std::errc::address_not_available);
  for (addrinfo* p = ai.list; p; p = p->ai_next) {
    UniqueHandle s = make_socket(p->ai_family);
    if (connect_retrying(s.get(), p->ai_addr, p->ai_addrlen) < 0) {
      last = last_error();
      continue;
    }
    int one = 1;
    ::setsockopt(s.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
  }
  throw std::system_error(last, "connect to " + host + ":" + std::to_string(port));
}

UniqueHandle accept_connection(native_handle listener, PeerAddress* peer) {
  for (;;) {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
#if MP_HAVE_ATOMIC_CLOEXEC
    int fd = ::accept4(listener, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_CLOEXEC);
#else
    int fd = ::accept(listener, reinterpret_cast<sockaddr*>(&ss), &len);
    if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      throw_last_error("accept");
    }
    UniqueHandle h(fd);
    if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (peer) {
      if (ss.ss_family == AF_UNIX) {
        auto* un = reinterpret_cast<sockaddr_un*>(&ss);
        std::size_t n = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
        peer->tcp = false;
        peer->host_or_path.assign(un->sun_path, ::strnlen(un->sun_path, n));
      } else {
        peer->tcp = true;
        peer->host_or_path = numeric_host(reinterpret_cast<sockaddr*>(&ss), len, &peer->port);
      }
    }
    return h;
  }
}

void set_receive_timeout(native_handle socket, double seconds) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
  if (::setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) throw_last_error("setsockopt(SO_RCVTIMEO)");
}

bool is_socket(native_handle h) noexcept {
  struct stat st;
  return ::fstat(h, &st) == 0 && S_ISSOCK(st.st_mode);
}

}  // namespace mp::platform
