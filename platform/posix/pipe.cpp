#include "platform/pipe.hpp"
#include "platform/error.hpp"

#include <cerrno>
#include <csignal>
#include <pthread.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace mp::platform {

namespace {
void set_cloexec(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) throw_last_error("fcntl(F_GETFD)");
  flags = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  if (::fcntl(fd, F_SETFD, flags) < 0) throw_last_error("fcntl(F_SETFD)");
}
}  // namespace

HandlePair make_pipe() {
  int fds[2];
#if defined(O_CLOEXEC) && !defined(__APPLE__)
  if (::pipe2(fds, O_CLOEXEC) < 0) throw_last_error("pipe2");
#else
  if (::pipe(fds) < 0) throw_last_error("pipe");
  set_cloexec(fds[0], true);
  set_cloexec(fds[1], true);
#endif
  return {UniqueHandle(fds[0]), UniqueHandle(fds[1])};
}

HandlePair make_socketpair() {
  int fds[2];
#ifdef SOCK_CLOEXEC
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) throw_last_error("socketpair");
#else
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0) throw_last_error("socketpair");
  set_cloexec(fds[0], true);
  set_cloexec(fds[1], true);
#endif
  return {UniqueHandle(fds[0]), UniqueHandle(fds[1])};
}

std::size_t read_some(native_handle h, std::span<std::byte> out) {
  for (;;) {
    ssize_t n = ::read(h, out.data(), out.size());
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno == EINTR) continue;
    throw_last_error("read");
  }
}

bool read_exact(native_handle h, std::span<const std::byte> out) {
  auto* p = const_cast<std::byte*>(out.data());
  std::size_t left = out.size();
  while (left > 0) {
    std::size_t n = read_some(h, {p, left});
    if (n == 0) return false;
    p += n;
    left -= n;
  }
  return true;
}

namespace {
// A pipe whose reader is gone raises SIGPIPE, which would kill the process. The library does not
// change the process's signal dispositions; instead the writing thread blocks SIGPIPE around the
// write and consumes the one the write raised, so the caller sees EPIPE.
ssize_t writev_no_sigpipe(int fd, iovec* iov, int n) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigset_t pending;
  sigemptyset(&pending);
  sigpending(&pending);
  const bool already_pending = sigismember(&pending, SIGPIPE) == 1;
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  ssize_t r = ::writev(fd, iov, n);
  int saved = errno;
  if (r < 0 && errno == EPIPE && !already_pending) {
    timespec zero{0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = saved;
  return r;
}

// send() with MSG_NOSIGNAL on sockets so a vanished peer is EPIPE, not SIGPIPE; write() on pipes.
ssize_t write_vec(int fd, iovec* iov, int n) {
#ifdef MSG_NOSIGNAL
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<decltype(msg.msg_iovlen)>(n);
  ssize_t r = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  if (r >= 0 || errno != ENOTSOCK) return r;
#endif
  return writev_no_sigpipe(fd, iov, n);
}
}  // namespace

void write_all2(native_handle h, std::span<const std::byte> head, std::span<const std::byte> body) {
  iovec iov[2] = {{const_cast<std::byte*>(head.data()), head.size()},
                  {const_cast<std::byte*>(body.data()), body.size()}};
  int first = 0;
  std::size_t left = head.size() + body.size();
  while (left > 0) {
    ssize_t n = write_vec(h, iov + first, 2 - first);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_last_error("write");
    }
    auto done = static_cast<std::size_t>(n);
    left -= done;
    while (first < 2 && done >= iov[first].iov_len) {
      done -= iov[first].iov_len;
      iov[first].iov_len = 0;
      ++first;
    }
    if (first < 2) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + done;
      iov[first].iov_len -= done;
    }
  }
}

void write_all(native_handle h, std::span<const std::byte> data) { write_all2(h, data, {}); }

void set_inheritable(native_handle h, bool inheritable) { set_cloexec(h, !inheritable); }

UniqueHandle duplicate(native_handle h) {
  int fd = ::fcntl(h, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) throw_last_error("fcntl(F_DUPFD_CLOEXEC)");
  return UniqueHandle(fd);
}

}  // namespace mp::platform
