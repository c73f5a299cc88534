// platform/address_wait_poll.hpp - the wait on a shared word where the OS has no cross-process
// address wait (macOS without futex; Windows, whose WaitOnAddress works only inside a process):
// poll with a growing pause. Correct (every waiter re-reads the word), bounded in latency (1 ms),
// and cheap in CPU for long waits. Used by the backends' address_wait.cpp.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <thread>

namespace mp::platform {

inline bool poll_on_address(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                            std::optional<std::chrono::nanoseconds> timeout) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  auto pause = std::chrono::microseconds(10);
  for (int spin = 0;; ++spin) {
    if (word.load(std::memory_order_acquire) != expected) return true;
    auto waited = clock::now() - start;
    if (timeout && waited >= *timeout) return false;
    if (spin < 64) {
      std::this_thread::yield();
      continue;
    }
    auto step = std::chrono::duration_cast<clock::duration>(pause);
    if (timeout) step = std::min(step, std::chrono::duration_cast<clock::duration>(*timeout - waited));
    std::this_thread::sleep_for(step);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

}  // namespace mp::platform
