// CPython's framing and HMAC challenge on raw handles (the layer Connection is built on).
#include "core/src/wire.hpp"
#include "platform/pipe.hpp"

#include <mp/exceptions.hpp>

#include <gtest/gtest.h>

#include <cstring>
#include <future>
#include <thread>

using mp::platform::make_socketpair;

namespace {
std::vector<std::byte> bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), reinterpret_cast<const std::byte*>(s.data()) + s.size()};
}
}  // namespace

TEST(Wire, FramesAreBigEndianLengthPrefixed) {
  auto [a, b] = make_socketpair();
  mp::detail::send_frame(a.get(), bytes("hello"));
  std::array<std::byte, 9> raw;
  ASSERT_TRUE(mp::platform::read_exact(b.get(), raw));
  EXPECT_EQ(raw[0], std::byte{0});
  EXPECT_EQ(raw[3], std::byte{5});
  EXPECT_EQ(std::memcmp(raw.data() + 4, "hello", 5), 0);
}

TEST(Wire, RoundTripAndEmptyMessage) {
  auto [a, b] = make_socketpair();
  mp::detail::send_frame(a.get(), {});
  mp::detail::send_frame(a.get(), bytes("x"));
  EXPECT_TRUE(mp::detail::recv_frame(b.get()).empty());
  EXPECT_EQ(mp::detail::recv_frame(b.get()), bytes("x"));
}

TEST(Wire, EofAndOverlongMessages) {
  auto [a, b] = make_socketpair();
  mp::detail::send_frame(a.get(), std::vector<std::byte>(100));
  EXPECT_THROW(mp::detail::recv_frame(b.get(), 10), mp::ProcessError);
  a.reset();
  auto [c, d] = make_socketpair();
  c.reset();
  EXPECT_THROW(mp::detail::recv_frame(d.get()), mp::EOFError);
}

TEST(Wire, NegativeLengthIsRejected) {
  auto [a, b] = make_socketpair();
  std::array<std::byte, 4> bad{std::byte{0x80}, std::byte{0}, std::byte{0}, std::byte{1}};
  mp::platform::write_all(a.get(), bad);
  EXPECT_THROW(mp::detail::recv_frame(b.get()), mp::ProcessError);
}

TEST(Wire, ChallengeAcceptsTheRightKey) {
  auto [a, b] = make_socketpair();
  mp::AuthKey key = mp::AuthKey::random();
  auto server = std::async(std::launch::async, [&, fd = a.get()] {
    mp::detail::deliver_challenge(fd, key);
    mp::detail::answer_challenge(fd, key);
  });
  mp::detail::answer_challenge(b.get(), key);
  mp::detail::deliver_challenge(b.get(), key);
  server.get();
}

TEST(Wire, ChallengeRefusesAWrongKeyOnBothSides) {
  auto [a, b] = make_socketpair();
  auto server = std::async(std::launch::async, [fd = a.get()] {
    mp::detail::deliver_challenge(fd, mp::AuthKey("right"));
  });
  EXPECT_THROW(mp::detail::answer_challenge(b.get(), mp::AuthKey("wrong")), mp::AuthenticationError);
  EXPECT_THROW(server.get(), mp::AuthenticationError);
}

TEST(Wire, ChallengeRejectsAnOversizedResponseWithoutReadingIt) {
  auto [a, b] = make_socketpair();
  auto server = std::async(std::launch::async, [fd = a.get()] {
    mp::detail::deliver_challenge(fd, mp::AuthKey("k"));
  });
  (void)mp::detail::recv_frame(b.get());
  // A hostile peer announces 1 GiB: refused on the length alone.
  std::array<std::byte, 4> huge{std::byte{0x40}, std::byte{0}, std::byte{0}, std::byte{0}};
  mp::platform::write_all(b.get(), huge);
  EXPECT_THROW(server.get(), mp::ProcessError);
}

TEST(AuthKey, ComparesByValue) {
  EXPECT_EQ(mp::AuthKey("abc"), mp::AuthKey("abc"));
  EXPECT_FALSE(mp::AuthKey("abc") == mp::AuthKey("abd"));
  EXPECT_FALSE(mp::AuthKey("abc") == mp::AuthKey("ab"));
  EXPECT_EQ(mp::AuthKey::random().size(), 32u);
  EXPECT_FALSE(mp::AuthKey::random() == mp::AuthKey::random());
}
