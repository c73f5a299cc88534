#include "popen.hpp"

#include "platform/process.hpp"

namespace mp::detail {

void Popen::signal(int sig) {
  // A child whose exit we have seen is gone: its pid may belong to someone else now.
  if (returncode_ || poll()) return;
  platform::send_signal(pid_, sig);
}

void Popen::terminate() { signal(platform::signal_term); }
void Popen::kill() { signal(platform::signal_kill); }

void Popen::close() noexcept {
  sentinel_.reset();
  parent_alive_.reset();
}

void Popen::forget_in_fork_child() noexcept {
  close();
  returncode_ = 255;  // not our child: never wait for or signal it from here
}

}  // namespace mp::detail
