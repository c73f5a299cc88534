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
  // One call for all the bytes (libsodium makes a system call per call); 32 symbols, so each
  // byte's low five bits pick one without bias: 5 bits of entropy per character.
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
  std::string s(chars, 'a');
  randombytes_buf(s.data(), s.size());
  for (auto& c : s) c = alphabet[static_cast<unsigned char>(c) & 31];
  return s;
}

}  // namespace mp::detail
