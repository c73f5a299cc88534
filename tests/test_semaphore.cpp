// The named-semaphore seam (platform/semaphore.hpp) against the real OS object.
#include "platform/semaphore.hpp"
#include "mp_config.hpp"

#include <mp/mp.hpp>

#include <gtest/gtest.h>

#include "test_platform.hpp"

#include <chrono>
#include <filesystem>
#include <optional>
#include <sys/stat.h>
#include <thread>

using mp::platform::NamedSemaphore;
using namespace std::chrono_literals;

namespace {
struct Unlinker {
  std::string name;
  ~Unlinker() {
    try {
      NamedSemaphore::unlink(name);
    } catch (...) {
    }
  }
};

void release_by_name(std::string name, int times) {
  NamedSemaphore s = NamedSemaphore::open(name);
  for (int i = 0; i < times; ++i) s.release();
}

// What value() reports for a count of `v`: nothing where the OS cannot read it (macOS).
std::optional<int> reported(int v) { return MP_HAVE_SEM_GETVALUE ? std::optional<int>(v) : std::nullopt; }
}  // namespace

TEST(NamedSemaphore, NamesAreUnguessablePrefixedAndShort) {
  std::string a = NamedSemaphore::random_name();
  std::string b = NamedSemaphore::random_name();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind(NamedSemaphore::prefix, 0), 0u);
  EXPECT_LE(a.size(), NamedSemaphore::max_name_length);
}

TEST(NamedSemaphore, CountsAndTimesOut) {
  EXPECT_EQ(NamedSemaphore::can_read_value(), MP_HAVE_SEM_GETVALUE != 0);
  std::string name = NamedSemaphore::random_name();
  Unlinker u{name};
  NamedSemaphore s = NamedSemaphore::create(name, 2);
  EXPECT_EQ(s.value(), reported(2));
  EXPECT_TRUE(s.try_acquire());
  EXPECT_TRUE(s.acquire(0s));
  EXPECT_FALSE(s.try_acquire());
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(s.acquire(0.1s));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 90ms);
  s.release();
  EXPECT_EQ(s.value(), reported(1));
  EXPECT_TRUE(s.acquire());
}

TEST(NamedSemaphore, CreatedPrivateAndExclusive) {
  std::string name = NamedSemaphore::random_name();
  Unlinker u{name};
  NamedSemaphore s = NamedSemaphore::create(name, 0);
  if (!mp_test::kWindows) {  // (Windows: the session's own namespace, "Local\", no file mode)
    struct stat st;
    std::string path = "/dev/shm/sem." + name.substr(1);
    ASSERT_EQ(::stat(path.c_str(), &st), 0) << path;  // glibc keeps named semaphores in /dev/shm
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  try {
    NamedSemaphore::create(name, 0);
    FAIL() << "a second create must fail";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::file_exists);
  }
}

TEST(NamedSemaphore, OpenMissingAndBadNames) {
  try {
    NamedSemaphore::open("/mp-no-such-semaphore");
    FAIL();
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
  }
  EXPECT_THROW(NamedSemaphore::create("no-slash", 0), std::system_error);
  EXPECT_THROW(NamedSemaphore::create("/" + std::string(40, 'x'), 0), std::system_error);
}

TEST(NamedSemaphore, UnlinkedSemaphoreStillWorksForItsHolders) {
  std::string name = NamedSemaphore::random_name();
  NamedSemaphore s = NamedSemaphore::create(name, 0);
  NamedSemaphore t = NamedSemaphore::open(name);
  NamedSemaphore::unlink(name);
  if (mp_test::kWindows) {
    // The name lives as long as a handle does (unlink has nothing to do there, as in CPython).
    EXPECT_NO_THROW(NamedSemaphore::open(name));
  } else {
    EXPECT_THROW(NamedSemaphore::open(name), std::system_error);
  }
  t.release();
  EXPECT_TRUE(s.acquire(1s));
}

class NamedSemaphoreAcrossProcesses : public mp_test::MethodTest<std::string> {};

TEST_P(NamedSemaphoreAcrossProcesses, ChildReleasesParentWakes) {
  std::string name = NamedSemaphore::random_name();
  Unlinker u{name};
  NamedSemaphore s = NamedSemaphore::create(name, 0);
  auto p = mp::get_context(GetParam()).Process(release_by_name, name, 3);
  p.start();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(s.acquire(30s));
  ASSERT_TRUE(p.join(30s));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_FALSE(s.try_acquire());
}

TEST_P(NamedSemaphoreAcrossProcesses, ThreadsAndProcessesContend) {
  std::string name = NamedSemaphore::random_name();
  Unlinker u{name};
  NamedSemaphore s = NamedSemaphore::create(name, 0);
  std::vector<mp::Process> procs;
  for (int i = 0; i < 4; ++i) {
    procs.push_back(mp::get_context(GetParam()).Process(release_by_name, name, 50));
    procs.back().start();
  }
  std::atomic<int> got{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      NamedSemaphore mine = NamedSemaphore::open(name);
      while (got.load() < 200) {
        if (mine.acquire(0.05s)) ++got;
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& p : procs) EXPECT_TRUE(p.join(30s));
  EXPECT_EQ(got.load(), 200);
  EXPECT_FALSE(s.try_acquire());
}

INSTANTIATE_TEST_SUITE_P(Methods, NamedSemaphoreAcrossProcesses, testing::Values("fork", "spawn", "forkserver"));
