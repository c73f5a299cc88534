#include "platform/address_wait.hpp"
#include "platform/address_wait_poll.hpp"
#include "platform/error.hpp"
#include "mp_config.hpp"

#include <cerrno>
#include <climits>
#include <thread>
#include <time.h>
#if MP_HAVE_FUTEX
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace mp::platform {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "the shared word must be a plain lock-free 32-bit integer");

#if MP_HAVE_FUTEX

bool address_wait_is_native() noexcept { return true; }

bool wait_on_address(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                     std::optional<std::chrono::nanoseconds> timeout) {
  timespec ts{};
  timespec* tp = nullptr;
  if (timeout) {
    if (timeout->count() <= 0) return word.load(std::memory_order_relaxed) != expected;
    ts.tv_sec = static_cast<time_t>(timeout->count() / 1000000000);
    ts.tv_nsec = static_cast<long>(timeout->count() % 1000000000);
    tp = &ts;
  }
  // FUTEX_WAIT (not _PRIVATE): the word is in a shared mapping, waiters are in other processes.
  long r = ::syscall(SYS_futex, const_cast<std::atomic<std::uint32_t>*>(&word), FUTEX_WAIT, expected, tp,
                     nullptr, 0);
  if (r == 0) return true;
  switch (errno) {
    case EAGAIN:  // the word had already changed
    case EINTR:
      return true;
    case ETIMEDOUT:
      return false;
    default:
      throw_last_error("futex(FUTEX_WAIT)");
  }
}

void wake_address(const std::atomic<std::uint32_t>& word, int count) noexcept {
  ::syscall(SYS_futex, const_cast<std::atomic<std::uint32_t>*>(&word), FUTEX_WAKE, count, nullptr, nullptr, 0);
}

#else

bool address_wait_is_native() noexcept { return false; }

// No shared-memory wait primitive (macOS): platform/address_wait_poll.hpp.
bool wait_on_address(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                     std::optional<std::chrono::nanoseconds> timeout) {
  return poll_on_address(word, expected, timeout);
}

void wake_address(const std::atomic<std::uint32_t>&, int) noexcept {}

#endif

}  // namespace mp::platform
