// core/src/random.hpp - unpredictable bytes (libsodium; portable, so no per-OS file).
#pragma once
#include <cstddef>
#include <span>
#include <string>

namespace mp::detail {
void random_bytes(std::span<std::byte> out);
std::string random_token(std::size_t chars);  // [a-z0-9]
}  // namespace mp::detail
