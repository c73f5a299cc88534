// platform/pipe.hpp - anonymous pipes and socket pairs, created non-inheritable; byte I/O on them.
#pragma once
#include "platform/unique_handle.hpp"
#include <cstddef>
#include <span>
#include <utility>

namespace mp::platform {

struct HandlePair {
  UniqueHandle first;   // for a pipe: the read end
  UniqueHandle second;  // for a pipe: the write end
};
HandlePair make_pipe();        // one-way: first reads, second writes
HandlePair make_socketpair();  // two-way, stream

// Reads up to out.size() bytes; 0 means end of file. Retries on EINTR.
std::size_t read_some(native_handle h, std::span<std::byte> out);
// Reads exactly out.size() bytes; false if end of file came first (before any byte or between).
bool read_exact(native_handle h, std::span<const std::byte> out);
// What a handle is, when the caller knows: saves probing on every call.
enum class HandleKind { unknown, socket, pipe };
HandleKind kind_of(native_handle h) noexcept;

// Writes everything; a closed peer is a std::system_error (EPIPE), never a SIGPIPE.
void write_all(native_handle h, std::span<const std::byte> data);
// Writes a header and a payload in one gathered call.
void write_all2(native_handle h, std::span<const std::byte> head, std::span<const std::byte> body,
                HandleKind kind = HandleKind::unknown);

// Asks for huge pages for a large buffer not yet touched (a hint; no-op where unsupported).
void advise_huge_pages(void* p, std::size_t n) noexcept;

void set_inheritable(native_handle h, bool inheritable);
UniqueHandle duplicate(native_handle h);  // the copy is not inheritable

}  // namespace mp::platform
