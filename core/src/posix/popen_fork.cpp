// The fork start method (CPython's popen_fork.py) and the part of spawn that is the same: a child
// of ours, reaped with waitpid, whose sentinel is a pipe it holds the write end of.
#include "popen_posix.hpp"

#include "process_state.hpp"
#include "platform/pipe.hpp"
#include "platform/process.hpp"
#include "platform/wait.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <iostream>

namespace mp::detail {

std::optional<int> ChildPopen::poll() {
  std::lock_guard lock(mutex_);
  // While another thread is blocked reaping, the child counts as running.
  if (!returncode_ && !reaping_) returncode_ = platform::reap(pid_, false);
  return returncode_;
}

std::optional<int> ChildPopen::wait(Timeout timeout) {
  if (auto r = poll()) return r;
  if (timeout) return wait_until(std::chrono::steady_clock::now() +
                                 std::chrono::duration_cast<std::chrono::steady_clock::duration>(*timeout));
  // No timeout: a blocking waitpid, which waits for the real end even if the child exec'd. Only
  // one thread reaps; the others wait for its answer.
  std::unique_lock lock(mutex_);
  reaped_.wait(lock, [this] { return !reaping_; });
  if (returncode_) return returncode_;
  reaping_ = true;
  lock.unlock();
  std::optional<int> r;
  try {
    r = platform::reap(pid_, true);
  } catch (...) {
    lock.lock();
    reaping_ = false;
    reaped_.notify_all();
    throw;
  }
  lock.lock();
  reaping_ = false;
  returncode_ = r;
  reaped_.notify_all();
  return returncode_;
}

// A timed wait must not outlast its timeout, even when the sentinel fires early (the child
// exec'd, or closed its descriptors): wait on a pidfd, which is ready exactly when the child has
// ended, where the OS has one; otherwise on the sentinel, then poll briefly until the deadline.
std::optional<int> ChildPopen::wait_until(std::chrono::steady_clock::time_point deadline) {
  using clock = std::chrono::steady_clock;
  auto left = [&] { return std::max(Seconds(0), std::chrono::duration_cast<Seconds>(deadline - clock::now())); };
  {
    std::lock_guard lock(mutex_);
    if (!process_handle_ && !returncode_) process_handle_ = platform::open_process_handle(pid_);
  }
  if (process_handle_) {
    native_handle_t h = process_handle_.get();
    if (platform::wait_ready(std::span(&h, 1), left()).empty()) return poll();
    for (int spins = 0; spins < 1000; ++spins) {  // ready means reapable; this loop is a formality
      if (auto r = poll()) return r;
      std::this_thread::yield();
    }
    return poll();
  }
  native_handle_t h = sentinel_.get();
  if (h != invalid_native_handle && platform::wait_ready(std::span(&h, 1), left()).empty()) return poll();
  for (auto pause = std::chrono::microseconds(20);; pause = std::min(pause * 2, std::chrono::microseconds(5000))) {
    if (auto r = poll()) return r;
    if (clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::min<clock::duration>(pause, deadline - clock::now()));
  }
}

void ChildPopen::close() noexcept {
  Popen::close();
  process_handle_.reset();
}

std::unique_ptr<Popen> launch_fork(Process& self) {
  platform::HandlePair status = platform::make_pipe();   // child → parent: EOF at the child's exit
  platform::HandlePair control = platform::make_pipe();  // parent → child: EOF at the parent's exit
  // Buffered output would otherwise be written twice, once by each process.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  const int parent = platform::current_pid();
  int pid = platform::fork_process();
  if (pid == 0) {
    status.first.reset();
    control.second.reset();
    run_fork_child(self, parent, std::move(status.second), std::move(control.first));
  }
  return std::make_unique<ChildPopen>(pid, std::move(status.first), std::move(control.second));
}

}  // namespace mp::detail
