// platform/address_wait.hpp - sleeping on a 32-bit word in memory shared between processes.
//
// The wake-up under the word-based primitives (Lock, RLock, Event; queues later): the fast paths
// are atomic operations on the word, and a thread only asks the OS to sleep when the word says it
// must wait. Linux: futex (shared, not private, so it works across processes). Elsewhere a bounded
// back-off poll (spin, yield, then sleeps growing to 1 ms) until a backend supplies better
// (macOS os_sync_wait_on_address with the SHARED flag; Windows a kernel event: issue 8).
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

namespace mp::platform {

// True where waits sleep in the kernel and wake_address() wakes them (else waits poll).
bool address_wait_is_native() noexcept;

// Sleeps while `word` holds `expected`, for at most `timeout` (empty: no limit). Returns false
// only on timeout; may return early (spuriously), so callers re-check the word in a loop.
bool wait_on_address(const std::atomic<std::uint32_t>& word, std::uint32_t expected,
                     std::optional<std::chrono::nanoseconds> timeout);

// Wakes up to `count` threads (any process) sleeping on `word`; INT_MAX wakes them all.
void wake_address(const std::atomic<std::uint32_t>& word, int count) noexcept;

}  // namespace mp::platform
