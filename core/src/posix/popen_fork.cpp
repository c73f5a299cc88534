// The fork start method (CPython's popen_fork.py) and the part of spawn that is the same: a child
// of ours, reaped with waitpid, whose sentinel is a pipe it holds the write end of.
#include "popen_posix.hpp"

#include "process_state.hpp"
#include "platform/pipe.hpp"
#include "platform/process.hpp"
#include "platform/wait.hpp"

#include <cstdio>
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
  if (timeout) {
    native_handle_t h = sentinel_.get();
    if (h != invalid_native_handle && platform::wait_ready(std::span(&h, 1), timeout).empty()) return std::nullopt;
    if (timeout->count() <= 0) return poll();
  }
  // As CPython: once the sentinel has fired (or with no timeout), a blocking waitpid. Only one
  // thread reaps; the others wait for its answer.
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
