// platform/native.hpp - the one place that says what a native handle is.
#pragma once
#include <mp/handle.hpp>

namespace mp::platform {
using native_handle = mp::native_handle_t;
inline const native_handle invalid_handle = mp::invalid_native_handle;
}  // namespace mp::platform
