#include "platform/error.hpp"
#include "platform/unique_handle.hpp"

#include <cerrno>
#include <unistd.h>

namespace mp::platform {

std::error_code last_error() noexcept { return {errno, std::system_category()}; }

void throw_last_error(const std::string& what) { throw std::system_error(last_error(), what); }

void close_handle(native_handle h) noexcept {
  int saved = errno;
  ::close(h);  // never retried: on Linux the fd is gone even when close reports EINTR
  errno = saved;
}

}  // namespace mp::platform
