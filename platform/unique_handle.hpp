// platform/unique_handle.hpp - move-only owner of one OS handle (fd or HANDLE).
#pragma once
#include "platform/native.hpp"
#include <utility>

namespace mp::platform {

// Closes without retrying on EINTR and preserves errno / last error.
void close_handle(native_handle h) noexcept;

class UniqueHandle {
 public:
  UniqueHandle() = default;
  explicit UniqueHandle(native_handle h) noexcept : h_(h) {}
  UniqueHandle(UniqueHandle&& o) noexcept : h_(std::exchange(o.h_, invalid_handle)) {}
  UniqueHandle& operator=(UniqueHandle&& o) noexcept {
    if (this != &o) reset(std::exchange(o.h_, invalid_handle));
    return *this;
  }
  UniqueHandle(const UniqueHandle&) = delete;
  UniqueHandle& operator=(const UniqueHandle&) = delete;
  ~UniqueHandle() { reset(); }

  native_handle get() const noexcept { return h_; }
  explicit operator bool() const noexcept { return h_ != invalid_handle; }
  native_handle release() noexcept { return std::exchange(h_, invalid_handle); }
  void reset(native_handle h = invalid_handle) noexcept {
    if (h_ != invalid_handle) close_handle(h_);
    h_ = h;
  }

 private:
  native_handle h_ = invalid_handle;
};

}  // namespace mp::platform
