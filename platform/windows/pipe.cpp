// Pipes on Windows: named pipes with overlapped I/O, so that connection::wait can wait on them
// (a zero-byte overlapped read completes when data or end of file arrives: win::watch_readable).
#include "platform/pipe.hpp"
#include "platform/error.hpp"
#include "platform/windows/pipe_io.hpp"
#include "random.hpp"

#include <algorithm>
#include <atomic>

namespace mp::platform {

namespace win {

HANDLE thread_event() {
  // One manual-reset event per thread for its overlapped calls (ReadFile/WriteFile reset it).
  thread_local struct Event {
    HANDLE h = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    ~Event() { CloseHandle(h); }
  } event;
  if (!event.h) throw_error(GetLastError(), "CreateEventW");
  return event.h;
}

std::wstring fresh_pipe_name() {
  static std::atomic<unsigned> counter{0};
  return L"\\\\.\\pipe\\mp-" + std::to_wstring(GetCurrentProcessId()) + L"-" +
         std::to_wstring(counter.fetch_add(1)) + L"-" + widen(mp::detail::random_token(8));
}

HandlePair make_named_pipe_pair(bool duplex) {
  std::wstring name = fresh_pipe_name();
  DWORD open_mode = (duplex ? PIPE_ACCESS_DUPLEX : PIPE_ACCESS_INBOUND) | FILE_FLAG_OVERLAPPED |
                    FILE_FLAG_FIRST_PIPE_INSTANCE;
  HANDLE server = CreateNamedPipeW(name.c_str(), open_mode, PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
                                   PIPE_REJECT_REMOTE_CLIENTS, 1, kPipeBuffer, kPipeBuffer, 0, nullptr);
  if (server == INVALID_HANDLE_VALUE) throw_error(GetLastError(), "CreateNamedPipeW");
  UniqueHandle s(server);
  DWORD access = duplex ? (GENERIC_READ | GENERIC_WRITE) : (GENERIC_WRITE | FILE_READ_ATTRIBUTES);
  HANDLE client = CreateFileW(name.c_str(), access, 0, nullptr, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, nullptr);
  if (client == INVALID_HANDLE_VALUE) throw_error(GetLastError(), "CreateFileW(pipe)");
  UniqueHandle c(client);
  OVERLAPPED ov{};
  ov.hEvent = thread_event();
  if (!ConnectNamedPipe(server, &ov)) {
    DWORD e = GetLastError();
    if (e == ERROR_IO_PENDING) {
      DWORD n = 0;
      if (!GetOverlappedResult(server, &ov, &n, TRUE)) throw_error(GetLastError(), "ConnectNamedPipe");
    } else if (e != ERROR_PIPE_CONNECTED) {
      throw_error(e, "ConnectNamedPipe");
    }
  }
  return {std::move(s), std::move(c)};
}

bool overlapped_io(HANDLE x, bool write, void* p, DWORD n, DWORD& done) {
  OVERLAPPED ov{};
  ov.hEvent = thread_event();
  BOOL ok = write ? WriteFile(x, p, n, &done, &ov) : ReadFile(x, p, n, &done, &ov);
  if (ok) return true;
  DWORD e = GetLastError();
  if (e != ERROR_IO_PENDING) {
    SetLastError(e);
    return false;
  }
  return GetOverlappedResult(x, &ov, &done, TRUE) != 0;
}

}  // namespace win

HandlePair make_pipe() { return win::make_named_pipe_pair(false); }
HandlePair make_socketpair() { return win::make_named_pipe_pair(true); }

std::size_t read_some(native_handle x, std::span<std::byte> out) {
  if (out.empty()) return 0;
  if (win::is_socket(win::h(x))) {
    int n = recv(reinterpret_cast<SOCKET>(x), reinterpret_cast<char*>(out.data()),
                 static_cast<int>(std::min<std::size_t>(out.size(), 1u << 30)), 0);
    if (n == SOCKET_ERROR) {
      int e = WSAGetLastError();
      if (e == WSAECONNRESET || e == WSAESHUTDOWN) return 0;
      win::throw_error(static_cast<DWORD>(e), "recv");
    }
    return static_cast<std::size_t>(n);
  }
  DWORD done = 0;
  DWORD n = static_cast<DWORD>(std::min<std::size_t>(out.size(), 1u << 30));
  if (win::overlapped_io(win::h(x), false, out.data(), n, done)) return done;
  DWORD e = GetLastError();
  if (e == ERROR_BROKEN_PIPE || e == ERROR_HANDLE_EOF || e == ERROR_PIPE_NOT_CONNECTED) return 0;
  if (e == ERROR_MORE_DATA) return done;  // a message-mode pipe: the rest comes with the next read
  win::throw_error(e, "ReadFile");
}

bool read_exact(native_handle x, std::span<const std::byte> out) {
  auto* p = const_cast<std::byte*>(out.data());
  std::size_t left = out.size();
  while (left > 0) {
    std::size_t n = read_some(x, {p, left});
    if (n == 0) return false;
    p += n;
    left -= n;
  }
  return true;
}

HandleKind kind_of(native_handle x) noexcept {
  return win::is_socket(win::h(x)) ? HandleKind::socket : HandleKind::pipe;
}

void advise_huge_pages(void*, std::size_t) noexcept {}

namespace {
void write_one(native_handle x, const std::byte* p, std::size_t size, bool socket) {
  while (size > 0) {
    DWORD n = static_cast<DWORD>(std::min<std::size_t>(size, 1u << 30));
    DWORD done = 0;
    if (socket) {
      int r = send(reinterpret_cast<SOCKET>(x), reinterpret_cast<const char*>(p), static_cast<int>(n), 0);
      if (r == SOCKET_ERROR) {
        int e = WSAGetLastError();
        if (e == WSAECONNRESET || e == WSAECONNABORTED || e == WSAESHUTDOWN) win::throw_error(ERROR_BROKEN_PIPE, "send");
        win::throw_error(static_cast<DWORD>(e), "send");
      }
      done = static_cast<DWORD>(r);
    } else if (!win::overlapped_io(win::h(x), true, const_cast<std::byte*>(p), n, done)) {
      win::throw_error(GetLastError(), "WriteFile");
    }
    p += done;
    size -= done;
  }
}
}  // namespace

void write_all2(native_handle x, std::span<const std::byte> head, std::span<const std::byte> body, HandleKind kind) {
  bool socket = kind == HandleKind::socket || (kind == HandleKind::unknown && win::is_socket(win::h(x)));
  // One write where it is small (a message arrives whole for a reader polling the pipe).
  if (!head.empty() && !body.empty() && head.size() + body.size() <= 64 * 1024) {
    std::byte buf[64 * 1024];
    std::copy(head.begin(), head.end(), buf);
    std::copy(body.begin(), body.end(), buf + head.size());
    write_one(x, buf, head.size() + body.size(), socket);
    return;
  }
  write_one(x, head.data(), head.size(), socket);
  write_one(x, body.data(), body.size(), socket);
}

void write_all(native_handle x, std::span<const std::byte> data) { write_all2(x, data, {}); }

void set_inheritable(native_handle x, bool inheritable) {
  if (!SetHandleInformation(win::h(x), HANDLE_FLAG_INHERIT, inheritable ? HANDLE_FLAG_INHERIT : 0))
    throw_last_error("SetHandleInformation");
}

UniqueHandle duplicate(native_handle x) {
  if (win::is_socket(win::h(x))) {
    WSAPROTOCOL_INFOW info;
    if (WSADuplicateSocketW(reinterpret_cast<SOCKET>(x), GetCurrentProcessId(), &info) != 0)
      win::throw_error(static_cast<DWORD>(WSAGetLastError()), "WSADuplicateSocketW");
    SOCKET s = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, &info, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET) win::throw_error(static_cast<DWORD>(WSAGetLastError()), "WSASocketW");
    return UniqueHandle(reinterpret_cast<native_handle>(s));
  }
  HANDLE out = nullptr;
  if (!DuplicateHandle(GetCurrentProcess(), win::h(x), GetCurrentProcess(), &out, 0, FALSE, DUPLICATE_SAME_ACCESS))
    throw_last_error("DuplicateHandle");
  return UniqueHandle(out);
}

}  // namespace mp::platform
