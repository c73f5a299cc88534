// The test programs' main(): mp::freeze_support() first, so each test binary can be re-executed
// as a spawn/forkserver child of itself.
#include <mp/mp.hpp>

#include <gtest/gtest.h>

int main(int argc, char** argv) {
  mp::freeze_support();
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
