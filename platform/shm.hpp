// platform/shm.hpp - named shared memory: create (exclusive, 0600), open, map, unlink.
// POSIX: shm_open + ftruncate + mmap. (Issue 5 builds SharedMemory on this.)
#pragma once
#include "platform/native.hpp"

#include <cstddef>
#include <span>
#include <string>
#include <utility>

namespace mp::platform {

class SharedMemorySegment {
 public:
  static SharedMemorySegment create(const std::string& name, std::size_t size);
  // A segment with no name, reachable only through its handle (kept open; it travels to other
  // processes like any handle): memfd where the probe finds it, else a name removed at once.
  // The OS frees it with the last handle and mapping, so it can never leak.
  static SharedMemorySegment create_anonymous(std::size_t size);
  // Maps the segment behind `handle` (taking ownership of it).
  static SharedMemorySegment from_handle(native_handle handle);
  static SharedMemorySegment open(const std::string& name);
  static void unlink(const std::string& name);
  static std::string random_name();  // "/mp-<pid>-<random>", 30 characters (core/src/object_name.hpp)

  SharedMemorySegment() = default;
  SharedMemorySegment(SharedMemorySegment&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        handle_(std::exchange(o.handle_, invalid_handle)),
        size_(std::exchange(o.size_, 0)),
        name_(std::move(o.name_)),
        named_handle_(std::exchange(o.named_handle_, false)) {}
  SharedMemorySegment& operator=(SharedMemorySegment&& o) noexcept {
    if (this != &o) {
      close();
      data_ = std::exchange(o.data_, nullptr);
      handle_ = std::exchange(o.handle_, invalid_handle);
      size_ = std::exchange(o.size_, 0);
      name_ = std::move(o.name_);
      named_handle_ = std::exchange(o.named_handle_, false);
    }
    return *this;
  }
  SharedMemorySegment(const SharedMemorySegment&) = delete;
  SharedMemorySegment& operator=(const SharedMemorySegment&) = delete;
  ~SharedMemorySegment() { close(); }

  std::span<std::byte> bytes() const noexcept { return {static_cast<std::byte*>(data_), size_}; }
  std::size_t size() const noexcept { return size_; }
  const std::string& name() const noexcept { return name_; }
  // The open handle of an anonymous segment (invalid for a named one).
  native_handle handle() const noexcept { return named_handle_ ? invalid_handle : handle_; }
  // Identifies the underlying object: two handles to one segment give the same value.
  std::string identity() const;
  void close() noexcept;  // unmaps (and closes the handle of an anonymous segment)

 private:
  SharedMemorySegment(void* data, std::size_t size, std::string name) : data_(data), size_(size), name_(std::move(name)) {}
  void* data_ = nullptr;
  native_handle handle_ = invalid_handle;
  std::size_t size_ = 0;
  std::string name_;
  bool named_handle_ = false;  // Windows: handle_ is a named mapping's, kept to keep the name alive
};

}  // namespace mp::platform
