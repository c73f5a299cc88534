// core/src/popen.hpp - the start-method seam: every start method is a backend of this interface
// (CPython's popen_*.py split). Process knows nothing else about how children are made.
#pragma once
#include <mp/handle.hpp>
#include <mp/process.hpp>
#include <mp/time.hpp>

#include "platform/unique_handle.hpp"

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace mp::detail {

class Popen {
 public:
  virtual ~Popen() = default;
  int pid() const noexcept { return pid_; }
  native_handle_t sentinel() const noexcept { return sentinel_.get(); }
  // The exit code once the child has ended (CPython's convention), without blocking.
  virtual std::optional<int> poll() = 0;
  // Waits up to `timeout` (empty: for ever); the exit code, or nullopt on timeout.
  virtual std::optional<int> wait(Timeout timeout) = 0;
  void terminate();
  void kill();
  // Releases every handle; the child must have ended (Process::close checks).
  virtual void close() noexcept;
  // In a forked copy of the parent: drop the handles without touching the child.
  void forget_in_fork_child() noexcept;

 protected:
  Popen(int pid, platform::UniqueHandle sentinel, platform::UniqueHandle parent_alive)
      : pid_(pid), sentinel_(std::move(sentinel)), parent_alive_(std::move(parent_alive)) {}
  // Delivers a signal (POSIX) or ends the process as by one (Windows).
  virtual void signal(int sig);
  int pid_;
  platform::UniqueHandle sentinel_;      // readable when the child has ended
  platform::UniqueHandle parent_alive_;  // the child reads EOF on its end when we are gone
  std::optional<int> returncode_;
};

// What a child in a fresh address space needs: the prepared bytes and the handles beside them.
struct SpawnRequest {
  std::vector<std::byte> prep;                 // encoded PrepData
  std::vector<native_handle_t> handles;        // travel to the child, in this order
};

std::unique_ptr<Popen> launch_fork(Process& self);
std::unique_ptr<Popen> launch_spawn(const SpawnRequest& request);
std::unique_ptr<Popen> launch_forkserver(const SpawnRequest& request);

// The running forkserver of this process, if any (for diagnostics and tests).
struct ForkServerInfo {
  int pid = -1;
  std::string address;
};
std::optional<ForkServerInfo> forkserver_info();

// Resets the forkserver client in a forked child (the server belongs to the parent).
void forkserver_client_after_fork() noexcept;
void forkserver_client_lock() noexcept;
void forkserver_client_unlock() noexcept;

}  // namespace mp::detail
