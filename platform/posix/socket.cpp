#include "platform/socket.hpp"
#include "platform/error.hpp"
#include "core/src/random.hpp"
#include "mp_config.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

namespace mp::platform {

namespace {
UniqueHandle unix_socket() {
#ifdef SOCK_CLOEXEC
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
#else
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
  if (fd < 0) throw_last_error("socket(AF_UNIX)");
  return UniqueHandle(fd);
}

socklen_t fill_address(sockaddr_un& a, const std::string& address) {
  std::memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  if (address.size() >= sizeof a.sun_path) {
    throw std::system_error(std::make_error_code(std::errc::filename_too_long), "unix socket address too long");
  }
  std::memcpy(a.sun_path, address.data(), address.size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address.size() + (address[0] == '\0' ? 0 : 1));
}
}  // namespace

UniqueHandle listen_local(std::string& address, int backlog) {
  UniqueHandle s = unix_socket();
#if MP_HAVE_ABSTRACT_SOCKETS
  address = std::string(1, '\0') + "mp-" + detail::random_token(16);
#else
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/mp-" + detail::random_token(10);
  if (::mkdir(dir.c_str(), 0700) < 0) throw_last_error("mkdir " + dir);
  address = dir + "/sock";
#endif
  sockaddr_un a;
  socklen_t len = fill_address(a, address);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), len) < 0) throw_last_error("bind(AF_UNIX)");
  if (::listen(s.get(), backlog) < 0) throw_last_error("listen");
  return s;
}

UniqueHandle connect_local(const std::string& address) {
  UniqueHandle s = unix_socket();
  sockaddr_un a;
  socklen_t len = fill_address(a, address);
  int r;
  do r = ::connect(s.get(), reinterpret_cast<sockaddr*>(&a), len);
  while (r < 0 && errno == EINTR);
  if (r < 0) throw_last_error("connect(AF_UNIX)");
  return s;
}

UniqueHandle accept_connection(native_handle listener) {
  for (;;) {
#if defined(SOCK_CLOEXEC) && !defined(__APPLE__)
    int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
#else
    int fd = ::accept(listener, nullptr, nullptr);
    if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
    if (fd >= 0) return UniqueHandle(fd);
    if (errno == EINTR || errno == ECONNABORTED) continue;
    throw_last_error("accept");
  }
}

void remove_local_address(const std::string& address) noexcept {
  if (address.empty() || address[0] == '\0') return;
  ::unlink(address.c_str());
  auto slash = address.rfind('/');
  if (slash != std::string::npos) ::rmdir(address.substr(0, slash).c_str());
}

void set_receive_timeout(native_handle socket, double seconds) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
  if (::setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) throw_last_error("setsockopt(SO_RCVTIMEO)");
}

}  // namespace mp::platform
