// Links the installed library and starts a child under every start method.
#include <mp/mp.hpp>

#include <iostream>

static void work(int n) { mp::sys_exit(n); }

int main() {
  mp::freeze_support();
  int failures = 0;
  for (const std::string& method : mp::get_all_start_methods()) {
    auto p = mp::get_context(method).Process(work, 42);
    p.start();
    p.join();
    std::cout << method << ": " << p << "\n";
    if (p.exitcode() != 42) ++failures;
  }
  std::cout << (failures ? "consumer: FAILED\n" : "consumer: ok\n");
  return failures;
}
