// mp/authkey.hpp - authentication keys (multiprocessing's `authkey`).
#pragma once
#include <cstddef>
#include <span>
#include <string_view>
#include <vector>

namespace mp {

class AuthKey {
 public:
  AuthKey() = default;
  explicit AuthKey(std::span<const std::byte> bytes) : bytes_(bytes.begin(), bytes.end()) {}
  explicit AuthKey(std::string_view text);
  // `n` random bytes from libsodium (CPython: os.urandom(32)).
  static AuthKey random(std::size_t n = 32);

  std::span<const std::byte> bytes() const noexcept { return bytes_; }
  std::size_t size() const noexcept { return bytes_.size(); }
  bool empty() const noexcept { return bytes_.empty(); }
  // Constant-time comparison.
  friend bool operator==(const AuthKey& a, const AuthKey& b) noexcept;

  template <class Archive>
  void serialize(Archive& ar) { ar(bytes_); }

 private:
  std::vector<std::byte> bytes_;
};

}  // namespace mp
