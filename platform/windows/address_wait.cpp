// Waits on a shared word on Windows: WaitOnAddress does not cross processes, so waits poll
// (platform/address_wait_poll.hpp) and wakes have nothing to do.
#include "platform/address_wait.hpp"
#include "platform/address_wait_poll.hpp"

namespace mp::platform {

bool address_wait_is_native() noexcept { return false; }

bool wait_on_address(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                     std::optional<std::chrono::nanoseconds> timeout) {
  return poll_on_address(word, expected, timeout);
}

void wake_address(const std::atomic<std::uint32_t>&, int) noexcept {}

}  // namespace mp::platform
