// Handles that travel on Windows: DuplicateHandle into the receiver (its pid known) or into the
// sender until the receiver pulls it with DUPLICATE_CLOSE_SOURCE (CPython's reduction.DupHandle).
// The bytes and the values travel in one stream; core/src/connection.cpp frames them.
#include "platform/handle_passing.hpp"
#include "platform/error.hpp"
#include "platform/pipe.hpp"
#include "platform/windows/win.hpp"

namespace mp::platform {

bool handles_travel_as_values() noexcept { return true; }

ExportedHandle export_handle(native_handle x, int target_pid) {
  ExportedHandle out;
  HANDLE target = GetCurrentProcess();
  UniqueHandle target_owner;
  if (target_pid > 0 && static_cast<DWORD>(target_pid) != GetCurrentProcessId()) {
    HANDLE p = OpenProcess(PROCESS_DUP_HANDLE, FALSE, static_cast<DWORD>(target_pid));
    if (!p) throw_last_error("OpenProcess(" + std::to_string(target_pid) + ", PROCESS_DUP_HANDLE)");
    target_owner.reset(p);
    target = p;
    out.holder_pid = target_pid;
  } else {
    out.holder_pid = static_cast<int>(GetCurrentProcessId());
  }
  HANDLE copy = nullptr;
  if (!DuplicateHandle(GetCurrentProcess(), win::h(x), target, &copy, 0, FALSE, DUPLICATE_SAME_ACCESS))
    throw_last_error("DuplicateHandle(export)");
  out.value = reinterpret_cast<std::uintptr_t>(copy);
  return out;
}

UniqueHandle import_handle(const ExportedHandle& e) {
  HANDLE value = reinterpret_cast<HANDLE>(static_cast<std::uintptr_t>(e.value));
  if (static_cast<DWORD>(e.holder_pid) == GetCurrentProcessId()) return UniqueHandle(value);
  HANDLE p = OpenProcess(PROCESS_DUP_HANDLE, FALSE, static_cast<DWORD>(e.holder_pid));
  if (!p) {
    throw std::system_error(last_error(), "a handle sent by process " + std::to_string(e.holder_pid) +
                                              " cannot be received: that process has ended (OpenProcess)");
  }
  UniqueHandle holder(p);
  HANDLE out = nullptr;
  if (!DuplicateHandle(p, value, GetCurrentProcess(), &out, 0, FALSE, DUPLICATE_SAME_ACCESS | DUPLICATE_CLOSE_SOURCE))
    throw_last_error("DuplicateHandle(import from " + std::to_string(e.holder_pid) + ")");
  return UniqueHandle(out);
}

// No attachment channel: the connection layer sends values in-band (see handles_travel_as_values);
// these are the plain byte operations for callers that pass no handles.
void send_handles(native_handle socket, std::span<const std::byte> data, std::span<const native_handle> handles) {
  if (!handles.empty())
    throw std::system_error(std::make_error_code(std::errc::operation_not_supported),
                            "send_handles: on Windows handles travel as values (export_handle)");
  write_all(socket, data);
}

bool recv_handles(native_handle socket, std::span<std::byte> data, std::vector<UniqueHandle>&, std::size_t) {
  return read_exact(socket, data);
}

std::size_t recv_some_with_handles(native_handle socket, std::span<std::byte> data, std::vector<UniqueHandle>&) {
  return read_some(socket, data);
}

}  // namespace mp::platform
