// Shared memory on Windows: file mappings backed by the paging file. Named ones live in the
// session namespace ("Local\mp-..."); the OS frees a mapping with its last handle and view, so
// unlink has nothing to do and nothing can leak (the resource tracker has no work here).
#include "platform/shm.hpp"
#include "platform/error.hpp"
#include "platform/unique_handle.hpp"
#include "platform/windows/win.hpp"
#include "core/src/object_name.hpp"
#include "random.hpp"

#include <cstring>
#include <utility>

namespace mp::platform {

namespace {

// An anonymous segment starts with one page the caller does not see: its size and an identity
// token, so that a process receiving its handle knows both (two handles to one mapping cannot be
// told apart otherwise).
constexpr std::size_t kHeader = 4096;
struct AnonymousHeader {
  char magic[8];
  std::uint64_t size;
  char token[32];
};
constexpr char kMagic[8] = {'m', 'p', '-', 'a', 'n', 'o', 'n', '1'};

HANDLE create_mapping(const wchar_t* name, std::size_t size) {
  auto big = static_cast<std::uint64_t>(size);
  HANDLE m = CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE, static_cast<DWORD>(big >> 32),
                                static_cast<DWORD>(big & 0xffffffffu), name);
  return m;
}

void* map_view(HANDLE m, std::size_t& size) {
  void* p = MapViewOfFile(m, FILE_MAP_ALL_ACCESS, 0, 0, 0);
  if (!p) throw_last_error("MapViewOfFile");
  MEMORY_BASIC_INFORMATION info{};
  if (VirtualQuery(p, &info, sizeof info) == 0) {
    auto ec = last_error();
    UnmapViewOfFile(p);
    throw std::system_error(ec, "VirtualQuery");
  }
  size = info.RegionSize;  // whole pages: Windows does not keep a mapping's exact size
  return p;
}

}  // namespace

std::string SharedMemorySegment::random_name() { return detail::make_object_name(); }

SharedMemorySegment SharedMemorySegment::create(const std::string& name, std::size_t size) {
  if (size == 0) throw std::system_error(std::make_error_code(std::errc::invalid_argument), "shared memory of size 0");
  HANDLE m = create_mapping(win::object_name(name).c_str(), size);
  if (!m) throw_last_error("CreateFileMappingW(" + name + ")");
  UniqueHandle owner(m);
  if (GetLastError() == ERROR_ALREADY_EXISTS) win::throw_error(ERROR_ALREADY_EXISTS, "CreateFileMappingW(" + name + ")");
  std::size_t mapped = 0;
  void* p = map_view(m, mapped);
  SharedMemorySegment seg(p, size, name);
  // The view alone keeps a named mapping alive only as long as it is mapped; keeping the handle
  // too lets another process open it by name until close().
  seg.handle_ = owner.release();
  seg.named_handle_ = true;
  return seg;
}

SharedMemorySegment SharedMemorySegment::open(const std::string& name) {
  HANDLE m = OpenFileMappingW(FILE_MAP_ALL_ACCESS, FALSE, win::object_name(name).c_str());
  if (!m) throw_last_error("OpenFileMappingW(" + name + ")");
  UniqueHandle owner(m);
  std::size_t size = 0;
  void* p = map_view(m, size);
  SharedMemorySegment seg(p, size, name);
  seg.handle_ = owner.release();
  seg.named_handle_ = true;
  return seg;
}

SharedMemorySegment SharedMemorySegment::create_anonymous(std::size_t size) {
  if (size == 0) throw std::system_error(std::make_error_code(std::errc::invalid_argument), "shared memory of size 0");
  HANDLE m = create_mapping(nullptr, size + kHeader);
  if (!m) throw_last_error("CreateFileMappingW(anonymous)");
  UniqueHandle owner(m);
  std::size_t mapped = 0;
  auto* base = static_cast<std::byte*>(map_view(m, mapped));
  AnonymousHeader hdr{};
  std::memcpy(hdr.magic, kMagic, sizeof kMagic);
  hdr.size = size;
  std::string token = detail::random_token(sizeof hdr.token);
  std::memcpy(hdr.token, token.data(), sizeof hdr.token);
  std::memcpy(base, &hdr, sizeof hdr);
  SharedMemorySegment seg(base + kHeader, size, "");
  seg.handle_ = owner.release();
  return seg;
}

SharedMemorySegment SharedMemorySegment::from_handle(native_handle handle) {
  UniqueHandle owner(handle);
  std::size_t mapped = 0;
  auto* base = static_cast<std::byte*>(map_view(win::h(handle), mapped));
  AnonymousHeader hdr{};
  std::memcpy(&hdr, base, sizeof hdr);
  if (std::memcmp(hdr.magic, kMagic, sizeof kMagic) != 0 || hdr.size + kHeader > mapped) {
    UnmapViewOfFile(base);
    throw std::system_error(std::make_error_code(std::errc::invalid_argument), "not an mp shared-memory segment");
  }
  SharedMemorySegment seg(base + kHeader, static_cast<std::size_t>(hdr.size), "");
  seg.handle_ = owner.release();
  return seg;
}

std::string SharedMemorySegment::identity() const {
  if (named_handle_ || !data_) return name_;
  AnonymousHeader hdr{};
  std::memcpy(&hdr, static_cast<std::byte*>(data_) - kHeader, sizeof hdr);
  return std::string(hdr.token, sizeof hdr.token);
}

void SharedMemorySegment::unlink(const std::string&) {}  // the name goes with the last handle

void SharedMemorySegment::close() noexcept {
  if (data_) UnmapViewOfFile(named_handle_ ? data_ : static_cast<std::byte*>(data_) - kHeader);
  data_ = nullptr;
  if (handle_ != invalid_handle) CloseHandle(win::h(handle_));
  handle_ = invalid_handle;
  named_handle_ = false;
  size_ = 0;
}

}  // namespace mp::platform
