// platform/error.hpp - the last OS error as std::error_code; one definition per OS.
#pragma once
#include <string>
#include <system_error>

namespace mp::platform {
std::error_code last_error() noexcept;
[[noreturn]] void throw_last_error(const std::string& what);
[[noreturn]] inline void throw_error(std::error_code ec, const std::string& what) {
  throw std::system_error(ec, what);
}
}  // namespace mp::platform
