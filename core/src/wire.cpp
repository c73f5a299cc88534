#include "wire.hpp"

#include "platform/pipe.hpp"
#include "random.hpp"
#include <mp/exceptions.hpp>

#include <array>
#include <cstring>
#include <sodium.h>
#include <string>
#include <string_view>

namespace mp::detail {

namespace {
void put_be(std::byte* out, std::uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i) {
    out[i] = static_cast<std::byte>(v & 0xff);
    v >>= 8;
  }
}
std::uint64_t get_be(const std::byte* in, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<std::uint64_t>(in[i]);
  return v;
}
std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
bool starts_with(const std::vector<std::byte>& v, std::string_view prefix) {
  return v.size() >= prefix.size() && std::memcmp(v.data(), prefix.data(), prefix.size()) == 0;
}

constexpr std::string_view kChallenge = "#CHALLENGE#";
constexpr std::string_view kWelcome = "#WELCOME#";
constexpr std::string_view kFailure = "#FAILURE#";
constexpr std::string_view kDigestPrefix = "{sha256}";
constexpr std::size_t kMessageLength = 40;
constexpr std::size_t kMaxResponse = 256;

std::array<unsigned char, crypto_auth_hmacsha256_BYTES> hmac(const AuthKey& key, std::span<const std::byte> msg) {
  std::array<unsigned char, crypto_auth_hmacsha256_BYTES> out;
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(key.bytes().data()), key.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(msg.data()), msg.size());
  crypto_auth_hmacsha256_final(&st, out.data());
  return out;
}
}  // namespace

void send_frame(native_handle_t h, std::span<const std::byte> payload, platform::HandleKind kind) {
  std::array<std::byte, 12> head;
  std::size_t n;
  if (payload.size() > 0x7fffffff) {
    put_be(head.data(), 0xffffffffu, 4);
    put_be(head.data() + 4, payload.size(), 8);
    n = 12;
  } else {
    put_be(head.data(), payload.size(), 4);
    n = 4;
  }
  platform::write_all2(h, {head.data(), n}, payload, kind);
}

std::vector<std::byte> recv_frame(native_handle_t h, std::optional<std::size_t> maxlength) {
  std::array<std::byte, 8> head;
  if (!platform::read_exact(h, std::span<const std::byte>(head.data(), 4))) throw EOFError("connection closed");
  std::int32_t small = static_cast<std::int32_t>(get_be(head.data(), 4));
  std::uint64_t size;
  if (small == -1) {
    if (!platform::read_exact(h, std::span<const std::byte>(head.data(), 8))) throw EOFError("connection closed");
    size = get_be(head.data(), 8);
  } else if (small < 0) {
    throw ProcessError("bad message length: " + std::to_string(small));
  } else {
    size = static_cast<std::uint64_t>(small);
  }
  if (maxlength && size > *maxlength) throw ProcessError("bad message length: " + std::to_string(size));
  std::vector<std::byte> out(size);
  if (!platform::read_exact(h, out)) throw EOFError("connection closed mid-message");
  return out;
}

namespace {
class HandleChannel final : public MessageChannel {
 public:
  explicit HandleChannel(native_handle_t h) : h_(h) {}
  void send(std::span<const std::byte> m) override { send_frame(h_, m); }
  std::vector<std::byte> recv(std::size_t maxlength) override { return recv_frame(h_, maxlength); }

 private:
  native_handle_t h_;
};
}  // namespace

void deliver_challenge(native_handle_t h, const AuthKey& key) {
  HandleChannel c(h);
  deliver_challenge(c, key);
}

void answer_challenge(native_handle_t h, const AuthKey& key) {
  HandleChannel c(h);
  answer_challenge(c, key);
}

void deliver_challenge(MessageChannel& h, const AuthKey& key) {
  std::vector<std::byte> message(kDigestPrefix.size() + kMessageLength);
  std::memcpy(message.data(), kDigestPrefix.data(), kDigestPrefix.size());
  random_bytes(std::span(message).subspan(kDigestPrefix.size()));
  std::vector<std::byte> out(kChallenge.size() + message.size());
  std::memcpy(out.data(), kChallenge.data(), kChallenge.size());
  std::memcpy(out.data() + kChallenge.size(), message.data(), message.size());
  h.send(out);
  std::vector<std::byte> response = h.recv(kMaxResponse);
  auto expected = hmac(key, message);
  bool ok = starts_with(response, kDigestPrefix) &&
            response.size() == kDigestPrefix.size() + expected.size() &&
            sodium_memcmp(response.data() + kDigestPrefix.size(), expected.data(), expected.size()) == 0;
  if (!ok) {
    h.send(as_bytes(kFailure));
    throw AuthenticationError("digest received was wrong");
  }
  h.send(as_bytes(kWelcome));
}

void answer_challenge(MessageChannel& h, const AuthKey& key) {
  std::vector<std::byte> message = h.recv(kMaxResponse);
  if (!starts_with(message, kChallenge)) throw AuthenticationError("protocol error, expected a challenge");
  std::span<const std::byte> body = std::span(message).subspan(kChallenge.size());
  if (body.size() < 20) throw AuthenticationError("challenge too short: " + std::to_string(body.size()) + " bytes");
  std::string_view view(reinterpret_cast<const char*>(body.data()), body.size());
  if (!view.starts_with(kDigestPrefix)) {
    throw AuthenticationError("challenge asks for a digest other than sha256");
  }
  auto digest = hmac(key, body);
  std::vector<std::byte> response(kDigestPrefix.size() + digest.size());
  std::memcpy(response.data(), kDigestPrefix.data(), kDigestPrefix.size());
  std::memcpy(response.data() + kDigestPrefix.size(), digest.data(), digest.size());
  h.send(response);
  std::vector<std::byte> verdict = h.recv(kMaxResponse);
  if (verdict.size() != kWelcome.size() || !starts_with(verdict, kWelcome)) {
    throw AuthenticationError("digest sent was rejected");
  }
}

}  // namespace mp::detail
