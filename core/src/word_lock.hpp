// core/src/word_lock.hpp - a lock that is one 32-bit word in shared memory holding its owner's
// process id: the mechanism under Lock, RLock and the queues' reader and writer locks.
//
// 0 = free; otherwise the holder's pid, with kContended set while threads may sleep on it.
// Taking a free lock is one compare-and-swap; a waiter sleeps on the word (platform/
// address_wait.hpp) and, every kOwnerCheck without a wake-up, checks whether the holding process
// still exists - if not, it takes the lock over and is told so (owner-death, as Windows'
// abandoned mutexes).
#pragma once
#include <mp/time.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace mp::detail {

inline constexpr std::uint32_t kContended = 1u << 30;
inline constexpr std::uint32_t kPidMask = kContended - 1;
inline constexpr auto kOwnerCheck = std::chrono::milliseconds(100);

enum class WordLockResult { timed_out, acquired, owner_died };

inline bool word_lock_try(std::atomic<std::uint32_t>& w, std::uint32_t me) noexcept {
  std::uint32_t free = 0;
  return w.compare_exchange_strong(free, me, std::memory_order_acquire, std::memory_order_relaxed);
}

// Waits for the lock up to `timeout` (empty: for ever).
WordLockResult word_lock_acquire_slow(std::atomic<std::uint32_t>& w, std::uint32_t me, const Timeout& timeout);

// Releases it, whoever holds it; false if it was not held (nothing changed). `me` is tried first:
// the common case (our own, uncontended) is one compare-and-swap.
bool word_lock_release(std::atomic<std::uint32_t>& w, std::uint32_t me);

}  // namespace mp::detail
