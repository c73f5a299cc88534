// The start methods on Windows (CPython's popen_spawn_win32.py): spawn only. The child is the same
// executable started by CreateProcessW with exactly its handles (platform::spawn_process); its
// process handle is the sentinel; terminate() and kill() are TerminateProcess, reading back as
// -SIGTERM and -SIGKILL.
#include "popen.hpp"

#include "process_state.hpp"
#include "platform/pipe.hpp"
#include "platform/process.hpp"
#include "platform/windows/process_handle.hpp"

#include <mutex>

namespace mp::detail {

std::string spawn_flag();

namespace {

class WindowsPopen final : public Popen {
 public:
  WindowsPopen(int pid, platform::UniqueHandle process, platform::UniqueHandle parent_alive)
      : Popen(pid, std::move(process), std::move(parent_alive)) {}

  std::optional<int> poll() override {
    std::lock_guard lock(mutex_);
    if (!returncode_ && sentinel_) returncode_ = platform::process_exit_code(sentinel_.get(), false);
    return returncode_;
  }

  std::optional<int> wait(Timeout timeout) override {
    if (auto r = poll()) return r;
    unsigned long ms = 0xFFFFFFFFul;
    if (timeout) {
      double t = timeout->count() * 1000.0;
      ms = t <= 0 ? 0 : t >= 4294967294.0 ? 4294967294ul : static_cast<unsigned long>(t + 0.999);
    }
    native_handle_t h;
    {
      std::lock_guard lock(mutex_);
      if (!sentinel_) return returncode_;
      h = sentinel_.get();
    }
    auto r = platform::wait_process(h, ms);
    std::lock_guard lock(mutex_);
    if (r && !returncode_) returncode_ = r;
    return returncode_;
  }

 protected:
  void signal(int sig) override {
    if (poll()) return;
    platform::terminate_process(sentinel_.get(), sig);
  }

 private:
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<Popen> launch_spawn(const SpawnRequest& request) {
  platform::HandlePair control = platform::make_pipe();  // the child reads the preparation data
  // The child's second handle is one to us: it can wait on its parent as on any process.
  platform::UniqueHandle self = platform::current_process_handle();
  std::vector<native_handle_t> inherit{control.first.get(), self.get()};
  inherit.insert(inherit.end(), request.handles.begin(), request.handles.end());
  std::string exe = get_executable();
  platform::UniqueHandle process;
  int pid = platform::spawn_process(exe, {exe, spawn_flag(), std::to_string(request.handles.size())}, inherit, &process);
  control.first.reset();
  try {
    send_frame(control.second.get(), request.prep);
  } catch (const std::system_error&) {
    // The child died before reading (it failed to start); its exit code tells the story.
  }
  return std::make_unique<WindowsPopen>(pid, std::move(process), std::move(control.second));
}

std::unique_ptr<Popen> launch_fork(Process&) {
  throw ValueError("cannot find context for 'fork'");  // not reached: the context refuses first
}

std::unique_ptr<Popen> launch_forkserver(const SpawnRequest&) {
  throw ValueError("cannot find context for 'forkserver'");
}

std::optional<ForkServerInfo> forkserver_info() { return std::nullopt; }
void forkserver_client_after_fork() noexcept {}
void forkserver_client_lock() noexcept {}
void forkserver_client_unlock() noexcept {}

void forkserver_main() {
  platform::write_stderr("mp: there is no forkserver on Windows\n");
  platform::exit_now(1);
}

}  // namespace mp::detail
