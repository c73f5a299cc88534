// platform/shm.hpp - named shared memory: create (exclusive, 0600), open, map, unlink.
// POSIX: shm_open + ftruncate + mmap. (Issue 5 builds SharedMemory on this.)
#pragma once
#include "platform/native.hpp"

#include <cstddef>
#include <span>
#include <string>

namespace mp::platform {

class SharedMemorySegment {
 public:
  static SharedMemorySegment create(const std::string& name, std::size_t size);
  static SharedMemorySegment open(const std::string& name);
  static void unlink(const std::string& name);
  static std::string random_name();  // "/mp-<pid>-<random>", 30 characters (core/src/object_name.hpp)

  SharedMemorySegment() = default;
  SharedMemorySegment(SharedMemorySegment&& o) noexcept;
  SharedMemorySegment& operator=(SharedMemorySegment&& o) noexcept;
  SharedMemorySegment(const SharedMemorySegment&) = delete;
  SharedMemorySegment& operator=(const SharedMemorySegment&) = delete;
  ~SharedMemorySegment();

  std::span<std::byte> bytes() const noexcept { return {static_cast<std::byte*>(data_), size_}; }
  std::size_t size() const noexcept { return size_; }
  const std::string& name() const noexcept { return name_; }
  void close() noexcept;  // unmaps

 private:
  SharedMemorySegment(void* data, std::size_t size, std::string name) : data_(data), size_(size), name_(std::move(name)) {}
  void* data_ = nullptr;
  std::size_t size_ = 0;
  std::string name_;
};

}  // namespace mp::platform
