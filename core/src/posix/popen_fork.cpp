// The fork start method (CPython's popen_fork.py) and the part of spawn that is the same: a child
// of ours, reaped with waitpid, whose sentinel is a pipe it holds the write end of.
#include "popen_posix.hpp"

#include "process_state.hpp"
#include "platform/pipe.hpp"
#include "platform/process.hpp"
#include "platform/wait.hpp"

#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

namespace mp::detail {

std::optional<int> ChildPopen::poll() {
  std::lock_guard lock(mutex_);
  if (!returncode_) returncode_ = platform::reap(pid_, false);
  return returncode_;
}

std::optional<int> ChildPopen::wait(Timeout timeout) {
  using clock = std::chrono::steady_clock;
  auto deadline = timeout ? clock::now() + std::chrono::duration_cast<clock::duration>(*timeout) : clock::time_point::max();
  if (auto r = poll()) return r;
  native_handle_t h = sentinel_.get();
  if (h != invalid_native_handle && platform::wait_ready(std::span(&h, 1), timeout).empty()) return std::nullopt;
  // The sentinel fires when the child's end closes: normally at its exit, earlier if it exec'd.
  for (auto pause = std::chrono::microseconds(50);; pause = std::min(pause * 2, std::chrono::microseconds(10000))) {
    if (auto r = poll()) return r;
    if (clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(pause);
  }
}

std::unique_ptr<Popen> launch_fork(Process& self) {
  platform::HandlePair status = platform::make_pipe();   // child → parent: EOF at the child's exit
  platform::HandlePair control = platform::make_pipe();  // parent → child: EOF at the parent's exit
  // Buffered output would otherwise be written twice, once by each process.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  int pid = platform::fork_process();
  if (pid == 0) {
    status.first.reset();
    control.second.reset();
    run_fork_child(self, std::move(status.second), std::move(control.first));
  }
  return std::make_unique<ChildPopen>(pid, std::move(status.first), std::move(control.second));
}

}  // namespace mp::detail
