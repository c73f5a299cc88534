#include "platform/wait.hpp"
#include "platform/error.hpp"

#include <cerrno>
#include <chrono>
#include <algorithm>
#include <cmath>
#include <poll.h>

namespace mp::platform {

std::vector<std::size_t> wait_ready(std::span<const native_handle> handles, Timeout timeout) {
  std::vector<pollfd> fds(handles.size());
  for (std::size_t i = 0; i < handles.size(); ++i) fds[i] = {handles[i], POLLIN, 0};
  using clock = std::chrono::steady_clock;
  const auto deadline = timeout ? clock::now() + std::chrono::duration_cast<clock::duration>(*timeout)
                                : clock::time_point::max();
  for (;;) {
    int ms = -1;
    if (timeout) {
      auto left = std::chrono::duration<double, std::milli>(deadline - clock::now()).count();
      ms = left <= 0 ? 0 : static_cast<int>(std::min(std::ceil(left), 2147483647.0));
    }
    int r = ::poll(fds.data(), static_cast<nfds_t>(fds.size()), ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_last_error("poll");
    }
    std::vector<std::size_t> ready;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents != 0) ready.push_back(i);
    }
    if (!ready.empty() || ms == 0) return ready;
    if (timeout && clock::now() >= deadline) return ready;
  }
}

bool is_ready(native_handle h) {
  pollfd p{h, POLLIN, 0};
  for (;;) {
    int r = ::poll(&p, 1, 0);
    if (r >= 0) return r > 0;
    if (errno != EINTR) throw_last_error("poll");
  }
}

}  // namespace mp::platform
