// The child side of spawn: freeze_support() and the bootstrapping-phase checks.
#include "process_state.hpp"

#include "platform/pipe.hpp"
#include "platform/process.hpp"

#include <cstdlib>

namespace mp::detail {

namespace {

constexpr const char* kSpawnFlag = "--mp-spawn";
constexpr const char* kForkServerFlag = "--mp-forkserver";

enum class Start { normal, spawn, forkserver };

Start how_started() {
  static const Start how = [] {
    auto args = platform::process_arguments();
    if (args.size() >= 2 && args[1] == kSpawnFlag) return Start::spawn;
    if (args.size() >= 2 && args[1] == kForkServerFlag) return Start::forkserver;
    return Start::normal;
  }();
  return how;
}

bool g_bootstrapped = false;

// A program started as a child whose main() never called freeze_support() and simply returned:
// say so instead of exiting 0 as if the child's work had been done.
void check_at_exit() {
  if (!g_bootstrapped && how_started() != Start::normal) {
    platform::write_stderr(
        "mp: this process was started by the spawn or forkserver start method, but main() ended without "
        "calling mp::freeze_support(); make it the first statement of main()\n");
    platform::exit_now(1);
  }
}

const bool g_registered = [] {
  if (how_started() != Start::normal) std::atexit(&check_at_exit);
  return true;
}();

}  // namespace

void check_bootstrapped() {
  (void)g_registered;
  if (how_started() == Start::normal || g_bootstrapped || in_child_bootstrap()) return;
  throw ProcessError(
      "An attempt has been made to start a new process before the current process has finished its "
      "bootstrapping phase.\n\n"
      "This probably means that you are not using fork to start your child processes and you have "
      "forgotten to use the proper idiom in the main function:\n\n"
      "    int main() {\n"
      "        mp::freeze_support();\n"
      "        ...\n"
      "    }\n\n"
      "mp::freeze_support() must be the first statement of main(): in a child started by spawn or "
      "forkserver it runs the child's work instead of the program's main line.");
}

std::string spawn_flag() { return kSpawnFlag; }
std::string forkserver_flag() { return kForkServerFlag; }

}  // namespace mp::detail

namespace mp {

void freeze_support() {
  using namespace detail;
  switch (how_started()) {
    case Start::normal:
      g_bootstrapped = true;
      return;
    case Start::spawn: {
      g_bootstrapped = true;
      // The parent placed: the control channel (preparation data; EOF when the parent is gone),
      // our end of the sentinel pipe, then the handles the target's arguments carry.
      // (On Windows the second is a handle to the parent process, held the same way.)
      platform::UniqueHandle control = platform::inherited_handle(0);
      platform::UniqueHandle status = platform::inherited_handle(1);
      // argv: <exe> --mp-spawn <number of handles after the first two>
      auto args = platform::process_arguments();
      int count = args.size() >= 3 ? std::atoi(args[2].c_str()) : 0;
      std::vector<platform::UniqueHandle> handles;
      for (int i = 0; i < count; ++i) handles.push_back(platform::inherited_handle(2 + static_cast<std::size_t>(i)));
      run_prepared_child(std::move(control), std::move(status), std::move(handles));
    }
    case Start::forkserver:
      g_bootstrapped = true;
      forkserver_main();
  }
}

}  // namespace mp
