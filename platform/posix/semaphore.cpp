#include "platform/semaphore.hpp"
#include "platform/error.hpp"
#include "core/src/object_name.hpp"
#include "mp_config.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <fcntl.h>
#include <semaphore.h>
#include <thread>
#include <time.h>
#include <utility>

namespace mp::platform {

namespace {
sem_t* sem(void* h) { return static_cast<sem_t*>(h); }

void check_name(const std::string& name) {
  if (name.size() < 2 || name[0] != '/' || name.size() > NamedSemaphore::max_name_length ||
      name.find('/', 1) != std::string::npos) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "semaphore name must be '/' then at most 29 characters without '/': " + name);
  }
}
}  // namespace

std::string NamedSemaphore::random_name() { return detail::make_object_name(); }

NamedSemaphore NamedSemaphore::create(const std::string& name, unsigned value) {
  check_name(name);
  sem_t* s = ::sem_open(name.c_str(), O_CREAT | O_EXCL, 0600, value);
  if (s == SEM_FAILED) throw_last_error("sem_open(" + name + ", O_CREAT|O_EXCL)");
  return NamedSemaphore(s, name);
}

NamedSemaphore NamedSemaphore::open(const std::string& name) {
  check_name(name);
  sem_t* s = ::sem_open(name.c_str(), 0);
  if (s == SEM_FAILED) throw_last_error("sem_open(" + name + ")");
  return NamedSemaphore(s, name);
}

void NamedSemaphore::unlink(const std::string& name) {
  if (::sem_unlink(name.c_str()) < 0) throw_last_error("sem_unlink(" + name + ")");
}

void NamedSemaphore::close() noexcept {
  if (handle_ != nullptr) ::sem_close(sem(handle_));
  handle_ = nullptr;
}

bool NamedSemaphore::try_acquire() {
  for (;;) {
    if (::sem_trywait(sem(handle_)) == 0) return true;
    if (errno == EAGAIN) return false;
    if (errno != EINTR) throw_last_error("sem_trywait");
  }
}

bool NamedSemaphore::acquire(Timeout timeout) {
  if (!timeout) {
    for (;;) {
      if (::sem_wait(sem(handle_)) == 0) return true;
      if (errno != EINTR) throw_last_error("sem_wait");
    }
  }
  if (try_acquire()) return true;
  if (timeout->count() <= 0) return false;
#if MP_HAVE_SEM_TIMEDWAIT
  // sem_timedwait takes an absolute CLOCK_REALTIME deadline.
  timespec now;
  ::clock_gettime(CLOCK_REALTIME, &now);
  double whole;
  double frac = std::modf(timeout->count(), &whole);
  timespec deadline{now.tv_sec + static_cast<time_t>(whole), now.tv_nsec + static_cast<long>(frac * 1e9)};
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec += 1;
    deadline.tv_nsec -= 1000000000L;
  }
  for (;;) {
    if (::sem_timedwait(sem(handle_), &deadline) == 0) return true;
    if (errno == ETIMEDOUT) return false;
    if (errno != EINTR) throw_last_error("sem_timedwait");
  }
#else
  // No timed wait (macOS): poll with a growing pause, as CPython's semaphore.c does.
  using clock = std::chrono::steady_clock;
  auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(*timeout);
  auto pause = std::chrono::microseconds(20);
  for (;;) {
    if (try_acquire()) return true;
    auto now = clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<clock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::microseconds(20000));
  }
#endif
}

void NamedSemaphore::release() {
  if (::sem_post(sem(handle_)) < 0) throw_last_error("sem_post");
}

bool NamedSemaphore::can_read_value() noexcept { return MP_HAVE_SEM_GETVALUE != 0; }

std::optional<int> NamedSemaphore::value() const {
#if MP_HAVE_SEM_GETVALUE
  int v = 0;
  if (::sem_getvalue(sem(handle_), &v) < 0) return std::nullopt;
  return v;
#else
  return std::nullopt;
#endif
}

}  // namespace mp::platform
