// The spawn start method on POSIX (CPython's popen_spawn_posix.py): posix_spawn of the executable
// with only the child's handles inherited, then the preparation data down the control channel.
#include "popen_posix.hpp"

#include "process_state.hpp"
#include "platform/pipe.hpp"
#include "platform/process.hpp"

namespace mp::detail {

std::string spawn_flag();

std::unique_ptr<Popen> launch_spawn(const SpawnRequest& request) {
  platform::HandlePair status = platform::make_pipe();
  // A socket pair so that writing to a child that died early is EPIPE, not SIGPIPE.
  platform::HandlePair control = platform::make_socketpair();
  std::vector<native_handle_t> inherit{control.first.get(), status.second.get()};
  inherit.insert(inherit.end(), request.handles.begin(), request.handles.end());
  std::string exe = get_executable();
  int pid = platform::spawn_process(exe, {exe, spawn_flag(), std::to_string(request.handles.size())}, inherit);
  control.first.reset();
  status.second.reset();
  try {
    send_frame(control.second.get(), request.prep);
  } catch (const std::system_error&) {
    // The child died before reading (it failed to start); its exit code tells the story.
  }
  return std::make_unique<ChildPopen>(pid, std::move(status.first), std::move(control.second));
}

}  // namespace mp::detail
