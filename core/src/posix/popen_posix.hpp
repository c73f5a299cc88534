#pragma once
#include "popen.hpp"

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace mp::detail {

// A direct child (fork, spawn): reaped with waitpid.
class ChildPopen final : public Popen {
 public:
  ChildPopen(int pid, platform::UniqueHandle sentinel, platform::UniqueHandle parent_alive)
      : Popen(pid, std::move(sentinel), std::move(parent_alive)) {}
  std::optional<int> poll() override;
  std::optional<int> wait(Timeout timeout) override;
  void close() noexcept override;

 private:
  std::optional<int> wait_until(std::chrono::steady_clock::time_point deadline);
  platform::UniqueHandle process_handle_;  // pidfd, opened for the first timed wait
  std::mutex mutex_;
  std::condition_variable reaped_;
  bool reaping_ = false;
};

}  // namespace mp::detail
