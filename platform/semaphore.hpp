// platform/semaphore.hpp - named semaphores: the OS object under Lock, RLock, Semaphore, ...
// POSIX: sem_open (names "/mp-<random>", at most 30 characters for macOS, mode 0600).
#pragma once
#include "platform/native.hpp"
#include <mp/time.hpp>

#include <optional>
#include <string>
#include <utility>

namespace mp::platform {

class NamedSemaphore {
 public:
  // Creates a new semaphore (fails with EEXIST if the name is taken).
  static NamedSemaphore create(const std::string& name, unsigned value);
  // Opens an existing one (ENOENT if there is none).
  static NamedSemaphore open(const std::string& name);
  // Removes the name; processes that have it open keep using it.
  static void unlink(const std::string& name);
  // A fresh unguessable name with the library's prefix.
  static std::string random_name();
  static constexpr std::size_t max_name_length = 30;
  static constexpr const char* prefix = "/mp-";

  NamedSemaphore() = default;
  NamedSemaphore(NamedSemaphore&& o) noexcept
      : handle_(std::exchange(o.handle_, nullptr)), name_(std::move(o.name_)) {}
  NamedSemaphore& operator=(NamedSemaphore&& o) noexcept {
    if (this != &o) {
      close();
      handle_ = std::exchange(o.handle_, nullptr);
      name_ = std::move(o.name_);
    }
    return *this;
  }
  NamedSemaphore(const NamedSemaphore&) = delete;
  NamedSemaphore& operator=(const NamedSemaphore&) = delete;
  ~NamedSemaphore() { close(); }

  // Decrements, waiting up to `timeout` (empty: for ever); false on timeout.
  bool acquire(Timeout timeout = {});
  bool try_acquire();
  void release();
  // The current count where the OS reports it (not on macOS: see can_read_value()).
  std::optional<int> value() const;
  // Whether value() reports the count on this system (sem_getvalue: not on macOS, where it fails).
  static bool can_read_value() noexcept;
  const std::string& name() const noexcept { return name_; }
  explicit operator bool() const noexcept { return handle_ != nullptr; }
  void close() noexcept;

 private:
  NamedSemaphore(void* handle, std::string name) : handle_(handle), name_(std::move(name)) {}
  void* handle_ = nullptr;  // sem_t* / HANDLE
  std::string name_;
};

}  // namespace mp::platform
