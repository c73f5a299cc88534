#include "random.hpp"

#include <sodium.h>
#include <stdexcept>

namespace mp::detail {

namespace {
void init_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw std::runtime_error("libsodium failed to initialise");
}
}  // namespace

void random_bytes(std::span<std::byte> out) {
  init_sodium();
  randombytes_buf(out.data(), out.size());
}

std::string random_token(std::size_t chars) {
  init_sodium();
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string s(chars, 'a');
  for (auto& c : s) c = alphabet[randombytes_uniform(36)];
  return s;
}

}  // namespace mp::detail
