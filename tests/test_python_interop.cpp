// mp and CPython exchange send_bytes/recv_bytes messages (0 B, 1 B, 64 KiB, 100 MiB), both ways,
// with either side listening: the framing is CPython's, byte for byte.
#include <mp/connection.hpp>

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <thread>

namespace {

const std::vector<std::size_t> kSizes{0, 1, 64 * 1024, 100 * 1024 * 1024};

std::vector<std::byte> pattern(std::size_t size) {
  std::vector<std::byte> v(size);
  for (std::size_t i = 0; i < size; ++i) v[i] = static_cast<std::byte>(i % 256);
  return v;
}

bool have_python() { return std::system("python3 -c 'import multiprocessing.connection' >/dev/null 2>&1") == 0; }

std::string peer_command(const std::string& mode, const std::string& address) {
  return "timeout 120 python3 " MP_PYTHON_PEER " " + mode + " '" + address + "'";
}

void talk(mp::Connection& c) {
  for (std::size_t size : kSizes) {
    std::vector<std::byte> msg = pattern(size);
    c.send_bytes(msg);
    std::vector<std::byte> back = c.recv_bytes();
    ASSERT_EQ(back.size(), size);
    for (std::size_t i = 0; i < size; ++i) {
      if (back[i] != static_cast<std::byte>((i + 1) % 256)) {
        FAIL() << "byte " << i << " of the " << size << "-byte answer is wrong";
      }
    }
  }
}

}  // namespace

TEST(PythonInterop, PythonListensMpConnects) {
  if (!have_python()) GTEST_SKIP() << "python3 with multiprocessing is not installed";
  std::string address = mp::arbitrary_address("AF_UNIX").path();
  std::unique_ptr<FILE, int (*)(FILE*)> peer(popen(peer_command("listen", address).c_str(), "r"), pclose);
  ASSERT_TRUE(peer);
  char line[64] = {};
  ASSERT_NE(fgets(line, sizeof line, peer.get()), nullptr) << "the Python listener did not start";
  ASSERT_EQ(std::string(line), "ready\n");
  mp::Connection c = mp::Client(address);
  talk(c);
  EXPECT_THROW(c.recv_bytes(), mp::EOFError);  // Python closed its end
  EXPECT_EQ(pclose(peer.release()), 0);
}

TEST(PythonInterop, MpListensPythonConnects) {
  if (!have_python()) GTEST_SKIP() << "python3 with multiprocessing is not installed";
  mp::Listener listener(mp::arbitrary_address("AF_UNIX"));
  std::string address = listener.address().path();
  std::unique_ptr<FILE, int (*)(FILE*)> peer(popen(peer_command("connect", address).c_str(), "r"), pclose);
  ASSERT_TRUE(peer);
  mp::Connection c = listener.accept();
  talk(c);
  EXPECT_THROW(c.recv_bytes(), mp::EOFError);
  EXPECT_EQ(pclose(peer.release()), 0);
}
