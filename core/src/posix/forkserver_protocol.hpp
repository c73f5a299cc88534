// The forkserver's private protocol, shared by its client (popen_forkserver.cpp) and the server.
#pragma once
#include <mp/authkey.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace mp::detail {

// Sent once, on the server's inherited config channel: never on the command line.
struct ForkServerConfig {
  AuthKey key;
  std::vector<std::string> preload;
  int log_level = 0;
  bool log_to_stderr = false;
  std::string address;
  std::string executable;
  template <class A>
  void serialize(A& a) { a(key, preload, log_level, log_to_stderr, address, executable); }
};

// One request on the authenticated control connection: "MPFK", the handle count, and the handles
// (the child's control end, the child's status write end, then the target's handles).
inline constexpr std::size_t kForkRequestSize = 8;
inline constexpr std::uint32_t kMaxForkHandles = 1024;

inline std::array<std::byte, kForkRequestSize> fork_request(std::uint32_t handles) {
  std::array<std::byte, kForkRequestSize> r;
  std::memcpy(r.data(), "MPFK", 4);
  std::memcpy(r.data() + 4, &handles, 4);
  return r;
}

inline bool parse_fork_request(const std::array<std::byte, kForkRequestSize>& r, std::uint32_t& handles) {
  if (std::memcmp(r.data(), "MPFK", 4) != 0) return false;
  std::memcpy(&handles, r.data() + 4, 4);
  return handles >= 2 && handles <= kMaxForkHandles;
}

}  // namespace mp::detail
