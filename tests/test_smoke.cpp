#include <mp/mp.hpp>
#include <gtest/gtest.h>

static void child_exit(int code) { mp::sys_exit(code); }

TEST(Smoke, AllMethods) {
  for (std::string m : mp::get_all_start_methods()) {
    auto& ctx = mp::get_context(m);
    auto p = ctx.Process(child_exit, 7);
    p.start();
    ASSERT_TRUE(p.join(std::chrono::seconds(20))) << m;
    EXPECT_EQ(p.exitcode(), 7) << m;
    std::cout << p << "\n";
  }
}
