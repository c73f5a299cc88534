#include <mp/authkey.hpp>

#include "random.hpp"

#include <sodium.h>

namespace mp {

AuthKey::AuthKey(std::string_view text)
    : bytes_(reinterpret_cast<const std::byte*>(text.data()),
             reinterpret_cast<const std::byte*>(text.data()) + text.size()) {}

AuthKey AuthKey::random(std::size_t n) {
  AuthKey k;
  k.bytes_.resize(n);
  detail::random_bytes(k.bytes_);
  return k;
}

bool operator==(const AuthKey& a, const AuthKey& b) noexcept {
  if (a.bytes_.size() != b.bytes_.size()) return false;
  return a.bytes_.empty() || sodium_memcmp(a.bytes_.data(), b.bytes_.data(), a.bytes_.size()) == 0;
}

}  // namespace mp
