#include "platform/address_wait.hpp"
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

// No shared-memory wait primitive: poll with a growing pause. Correct (every waiter re-reads the
// word), bounded in latency (1 ms), and cheap in CPU for long waits.
bool wait_on_address(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
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

void wake_address(const std::atomic<std::uint32_t>&, int) noexcept {}

#endif

}  // namespace mp::platform
