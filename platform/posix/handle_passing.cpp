#include "platform/handle_passing.hpp"
#include "platform/error.hpp"
#include "mp_config.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace mp::platform {

namespace {
// The descriptors a recvmsg delivered, owned from here on (close-on-exec).
void take_handles(msghdr& msg, std::vector<UniqueHandle>& handles) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      handles.emplace_back(fd);
#if !MP_HAVE_ATOMIC_CLOEXEC
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
    }
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    throw std::system_error(std::make_error_code(std::errc::message_size),
                            "recvmsg(SCM_RIGHTS): more handles than expected were sent");
  }
}
}  // namespace

void send_handles(native_handle socket, std::span<const std::byte> data, std::span<const native_handle> handles) {
  std::vector<char> control(CMSG_SPACE(sizeof(int) * handles.size()));
  iovec iov{const_cast<std::byte*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!handles.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = static_cast<decltype(msg.msg_controllen)>(control.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * handles.size());
    std::memcpy(CMSG_DATA(c), handles.data(), sizeof(int) * handles.size());
  }
  int flags = 0;
#ifdef MSG_NOSIGNAL
  flags |= MSG_NOSIGNAL;
#endif
  ssize_t n;
  do n = ::sendmsg(socket, &msg, flags);
  while (n < 0 && errno == EINTR);
  if (n < 0) throw_last_error("sendmsg(SCM_RIGHTS)");
  // The handles went with the first byte; the rest is plain data.
  std::size_t sent = static_cast<std::size_t>(n);
  while (sent < data.size()) {
    do n = ::send(socket, data.data() + sent, data.size() - sent, flags);
    while (n < 0 && errno == EINTR);
    if (n < 0) throw_last_error("send");
    sent += static_cast<std::size_t>(n);
  }
}

bool recv_handles(native_handle socket, std::span<std::byte> data, std::vector<UniqueHandle>& handles,
                  std::size_t max_handles) {
  std::vector<char> control(CMSG_SPACE(sizeof(int) * (max_handles == 0 ? 1 : max_handles)));
  std::size_t got = 0;
  bool first = true;
  while (got < data.size()) {
    iovec iov{data.data() + got, data.size() - got};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (first) {
      msg.msg_control = control.data();
      msg.msg_controllen = static_cast<decltype(msg.msg_controllen)>(control.size());
    }
    int flags = 0;
#if MP_HAVE_ATOMIC_CLOEXEC
    flags |= MSG_CMSG_CLOEXEC;
#endif
    ssize_t n = ::recvmsg(socket, &msg, flags);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_last_error("recvmsg(SCM_RIGHTS)");
    }
    if (first) {
      take_handles(msg, handles);
      first = false;
    }
    if (n == 0) {
      if (got == 0) return false;
      throw std::system_error(std::make_error_code(std::errc::connection_reset), "recvmsg: peer closed mid-message");
    }
    got += static_cast<std::size_t>(n);
  }
  return true;
}

std::size_t recv_some_with_handles(native_handle socket, std::span<std::byte> data, std::vector<UniqueHandle>& handles) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 16)];
  for (;;) {
    iovec iov{data.data(), data.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    int flags = 0;
#if MP_HAVE_ATOMIC_CLOEXEC
    flags |= MSG_CMSG_CLOEXEC;
#endif
    ssize_t n = ::recvmsg(socket, &msg, flags);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOTSOCK) {
        do n = ::read(socket, data.data(), data.size());
        while (n < 0 && errno == EINTR);
        if (n < 0) throw_last_error("read");
        return static_cast<std::size_t>(n);
      }
      throw_last_error("recvmsg");
    }
    take_handles(msg, handles);
    return static_cast<std::size_t>(n);
  }
}

bool handles_travel_as_values() noexcept { return false; }

// Handles ride on their bytes here (SCM_RIGHTS): a value means nothing in another process.
ExportedHandle export_handle(native_handle, int) {
  throw std::system_error(std::make_error_code(std::errc::operation_not_supported),
                          "export_handle: POSIX sends descriptors with SCM_RIGHTS");
}
UniqueHandle import_handle(const ExportedHandle&) {
  throw std::system_error(std::make_error_code(std::errc::operation_not_supported),
                          "import_handle: POSIX receives descriptors with SCM_RIGHTS");
}

}  // namespace mp::platform
