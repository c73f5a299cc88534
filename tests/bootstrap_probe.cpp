// A program that gets the bootstrap idiom wrong, for test_bootstrap.cpp. It reads its orders from
// the environment (a spawned child re-runs main() with the library's own arguments):
//   MP_PROBE_MODE=start-first  starts a Process before calling freeze_support()
//   MP_PROBE_MODE=no-freeze    never calls freeze_support(); a spawned child's main just returns
//   MP_PROBE_MODE=chdir        does it right, but changes directory before starting (the test
//                              runs it by a relative path: the program must still be found)
//   MP_PROBE_METHOD=<start method>
// It prints the child's repr once the child has been joined (the parent must never hang on a
// child that failed to bootstrap).
#include <mp/mp.hpp>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

static void work() { std::cout << "the child ran its target" << std::endl; }

int main() {
  const char* mode = std::getenv("MP_PROBE_MODE");
  const char* method = std::getenv("MP_PROBE_METHOD");
  if (mode == nullptr || method == nullptr) return 2;
  // no-freeze: the children (and a forkserver) inherit this and return from main at once.
  if (std::getenv("MP_PROBE_CHILD") != nullptr) return 0;
#if defined(_WIN32)
  if (std::string(mode) == "no-freeze") _putenv_s("MP_PROBE_CHILD", "1");
#else
  if (std::string(mode) == "no-freeze") setenv("MP_PROBE_CHILD", "1", 1);
#endif
  if (std::string(mode) == "chdir") {
    mp::freeze_support();
    std::error_code ec;
    std::filesystem::current_path("/", ec);
    if (ec) return 3;
  }
  auto p = mp::get_context(method).Process(work);
  try {
    p.start();  // in a spawned child of the start-first program this throws: "bootstrapping phase"
  } catch (const mp::ProcessError& e) {
    std::cout << "start failed: " << e.what() << std::endl;
    return 0;
  }
  p.join(mp::Seconds(60));
  std::cout << p << std::endl;
  if (std::string(mode) == "start-first") mp::freeze_support();
  return 0;
}
