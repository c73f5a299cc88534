// platform/wait.hpp - wait for any of several handles to become ready (readable / signalled).
#pragma once
#include "platform/native.hpp"
#include <mp/time.hpp>
#include <cstddef>
#include <span>
#include <vector>

namespace mp::platform {
// Indices of the ready handles (readable, at EOF, or in error); empty on timeout.
// No limit on the number of handles.
std::vector<std::size_t> wait_ready(std::span<const native_handle> handles, Timeout timeout);
bool is_ready(native_handle h);
}  // namespace mp::platform
