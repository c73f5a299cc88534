// Waiting for any of several handles on Windows, with no 64-handle ceiling (gh-89240).
// Pipes are not waitable objects: each gets a zero-byte overlapped read, which completes when data
// or end of file arrives (CPython's connection.wait does the same), and is cancelled afterwards.
// Sockets get an event through WSAEventSelect. Other handles (processes, events) are waited on.
#include "platform/wait.hpp"
#include "platform/error.hpp"
#include "platform/windows/win.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

namespace mp::platform {

namespace {

enum class Kind { pipe, socket, object };

struct Entry {
  Kind kind = Kind::object;
  HANDLE handle = nullptr;
  HANDLE event = nullptr;  // pipes and sockets: ours, closed at the end
  OVERLAPPED ov{};
  bool pending = false;    // a pipe's zero-byte read is in flight
  bool ready = false;
};

DWORD millis(std::chrono::steady_clock::time_point deadline, bool bounded) {
  if (!bounded) return INFINITE;
  auto left = std::chrono::duration<double, std::milli>(deadline - std::chrono::steady_clock::now()).count();
  if (left <= 0) return 0;
  return static_cast<DWORD>(std::min(std::ceil(left), 4294967294.0));
}

void CALLBACK signal_shared(void* event, BOOLEAN) { SetEvent(static_cast<HANDLE>(event)); }

// Waits until any of `hs` is signalled or `ms` pass. Above 64 handles, thread-pool waits signal one
// shared event (RegisterWaitForSingleObject), so there is no limit.
void wait_any(const std::vector<HANDLE>& hs, DWORD ms) {
  if (hs.empty()) {
    if (ms != INFINITE) Sleep(ms);
    else throw std::invalid_argument("wait: nothing to wait for and no timeout");
    return;
  }
  if (hs.size() <= MAXIMUM_WAIT_OBJECTS) {
    DWORD r = WaitForMultipleObjects(static_cast<DWORD>(hs.size()), hs.data(), FALSE, ms);
    if (r == WAIT_FAILED) throw_last_error("WaitForMultipleObjects");
    return;
  }
  HANDLE shared = CreateEventW(nullptr, TRUE, FALSE, nullptr);
  if (!shared) throw_last_error("CreateEventW");
  std::vector<HANDLE> waits;
  waits.reserve(hs.size());
  for (HANDLE x : hs) {
    HANDLE w = nullptr;
    if (RegisterWaitForSingleObject(&w, x, &signal_shared, shared, INFINITE, WT_EXECUTEONLYONCE | WT_EXECUTEINWAITTHREAD))
      waits.push_back(w);
  }
  WaitForSingleObject(shared, ms);
  for (HANDLE w : waits) UnregisterWaitEx(w, INVALID_HANDLE_VALUE);
  CloseHandle(shared);
}

}  // namespace

std::vector<std::size_t> wait_ready(std::span<const native_handle> handles, Timeout timeout) {
  using clock = std::chrono::steady_clock;
  const bool bounded = timeout.has_value();
  const auto deadline = bounded ? clock::now() + std::chrono::duration_cast<clock::duration>(*timeout)
                                : clock::time_point::max();
  std::vector<std::unique_ptr<Entry>> entries;
  entries.reserve(handles.size());
  auto cleanup = [&entries] {
    for (auto& e : entries) {
      if (e->pending) {
        CancelIoEx(e->handle, &e->ov);
        DWORD n = 0;
        if (GetOverlappedResult(e->handle, &e->ov, &n, TRUE) || GetLastError() != ERROR_OPERATION_ABORTED)
          e->ready = true;  // it completed (data or end of file) before the cancel took
        e->pending = false;
      }
      if (e->kind == Kind::socket && e->event) {
        SOCKET s = reinterpret_cast<SOCKET>(e->handle);
        WSANETWORKEVENTS ne{};
        if (WSAEnumNetworkEvents(s, e->event, &ne) == 0 && ne.lNetworkEvents != 0) e->ready = true;
        WSAEventSelect(s, nullptr, 0);
        u_long blocking = 0;
        ioctlsocket(s, FIONBIO, &blocking);
      }
      if (e->event) CloseHandle(e->event);
      e->event = nullptr;
    }
  };
  std::vector<std::size_t> ready;
  try {
    for (native_handle x : handles) {
      auto e = std::make_unique<Entry>();
      e->handle = win::h(x);
      if (GetFileType(e->handle) == FILE_TYPE_PIPE) e->kind = win::is_socket(e->handle) ? Kind::socket : Kind::pipe;
      if (e->kind != Kind::object) {
        e->event = CreateEventW(nullptr, TRUE, FALSE, nullptr);
        if (!e->event) throw_last_error("CreateEventW");
      }
      if (e->kind == Kind::pipe) {
        e->ov.hEvent = e->event;
        DWORD n = 0;
        char none = 0;
        if (ReadFile(e->handle, &none, 0, &n, &e->ov)) {
          e->ready = true;
        } else if (GetLastError() == ERROR_IO_PENDING) {
          e->pending = true;
        } else {
          e->ready = true;  // end of file or an error: reading will tell
        }
      } else if (e->kind == Kind::socket) {
        if (WSAEventSelect(reinterpret_cast<SOCKET>(e->handle), e->event, FD_READ | FD_ACCEPT | FD_CLOSE) != 0)
          win::throw_error(static_cast<DWORD>(WSAGetLastError()), "WSAEventSelect");
      }
      entries.push_back(std::move(e));
    }
    for (;;) {
      bool any = std::any_of(entries.begin(), entries.end(), [](auto& e) { return e->ready; });
      if (!any) {
        std::vector<HANDLE> hs;
        for (auto& e : entries) hs.push_back(e->kind == Kind::object ? e->handle : e->event);
        wait_any(hs, millis(deadline, bounded));
      }
      for (auto& e : entries) {
        if (e->ready) continue;
        HANDLE w = e->kind == Kind::object ? e->handle : e->event;
        DWORD r = WaitForSingleObject(w, 0);
        if (r == WAIT_OBJECT_0 || r == WAIT_ABANDONED) e->ready = true;
        if (e->kind == Kind::pipe && e->ready) e->pending = false;
      }
      any = std::any_of(entries.begin(), entries.end(), [](auto& e) { return e->ready; });
      if (any || (bounded && clock::now() >= deadline)) break;
    }
    cleanup();
  } catch (...) {
    cleanup();
    throw;
  }
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i]->ready) ready.push_back(i);
  }
  return ready;
}

bool is_ready(native_handle h) {
  native_handle one[1] = {h};
  return !wait_ready(one, Seconds(0)).empty();
}

}  // namespace mp::platform
