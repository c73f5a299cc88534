#include "platform/pipe.hpp"
#include "platform/error.hpp"
#include "mp_config.hpp"

#include <cerrno>
#include <csignal>
#include <pthread.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/mman.h>
#include <sys/stat.h>
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
#if MP_HAVE_ATOMIC_CLOEXEC
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
#if MP_HAVE_ATOMIC_CLOEXEC
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
// write and consumes the one the write raised, so the caller sees EPIPE. (If the thread already
// blocks SIGPIPE, that is its choice and the mask is left alone.) Two system calls per write.
ssize_t writev_no_sigpipe(int fd, iovec* iov, int n) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  ssize_t r = ::writev(fd, iov, n);
  int saved = errno;
  if (sigismember(&old, SIGPIPE) != 1) {
    if (r < 0 && saved == EPIPE) {
      timespec zero{0, 0};
      while (sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  errno = saved;
  return r;
}

ssize_t sendmsg_nosignal(int fd, iovec* iov, int n) {
#ifdef MSG_NOSIGNAL
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = static_cast<decltype(msg.msg_iovlen)>(n);
  return ::sendmsg(fd, &msg, MSG_NOSIGNAL);
#else
  return writev_no_sigpipe(fd, iov, n);  // (no MSG_NOSIGNAL: macOS)
#endif
}

// sendmsg with MSG_NOSIGNAL on sockets (a vanished peer is EPIPE, not SIGPIPE); writev on pipes.
ssize_t write_vec(int fd, iovec* iov, int n, HandleKind kind) {
  if (kind == HandleKind::socket) return sendmsg_nosignal(fd, iov, n);
  if (kind == HandleKind::pipe) return writev_no_sigpipe(fd, iov, n);
  ssize_t r = sendmsg_nosignal(fd, iov, n);
  if (r >= 0 || errno != ENOTSOCK) return r;
  return writev_no_sigpipe(fd, iov, n);
}
}  // namespace

HandleKind kind_of(native_handle h) noexcept {
  struct stat st;
  if (::fstat(h, &st) != 0) return HandleKind::unknown;
  return S_ISSOCK(st.st_mode) ? HandleKind::socket : HandleKind::pipe;
}

void advise_huge_pages(void* p, std::size_t n) noexcept {
#if MP_HAVE_MADV_HUGEPAGE
  // Only the whole huge pages inside the buffer.
  constexpr std::uintptr_t huge = 2u << 20;
  auto begin = (reinterpret_cast<std::uintptr_t>(p) + huge - 1) & ~(huge - 1);
  auto end = (reinterpret_cast<std::uintptr_t>(p) + n) & ~(huge - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)n;
#endif
}

void write_all2(native_handle h, std::span<const std::byte> head, std::span<const std::byte> body, HandleKind kind) {
  iovec iov[2] = {{const_cast<std::byte*>(head.data()), head.size()},
                  {const_cast<std::byte*>(body.data()), body.size()}};
  int first = 0;
  std::size_t left = head.size() + body.size();
  while (left > 0) {
    ssize_t n = write_vec(h, iov + first, 2 - first, kind);
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
