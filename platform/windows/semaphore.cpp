// Named semaphores on Windows: CreateSemaphoreW in the session namespace ("Local\mp-...").
// The OS removes the name with the last handle, so unlink has nothing to do and nothing can leak.
#include "platform/semaphore.hpp"
#include "platform/error.hpp"
#include "platform/windows/win.hpp"
#include "core/src/object_name.hpp"

#include <climits>
#include <cmath>
#include <utility>

namespace mp::platform {

namespace {
void check_name(const std::string& name) {
  if (name.size() < 2 || name[0] != '/' || name.size() > NamedSemaphore::max_name_length ||
      name.find_first_of("/\\", 1) != std::string::npos) {
    throw std::system_error(std::make_error_code(std::errc::invalid_argument),
                            "semaphore name must be '/' then at most 29 characters without '/': " + name);
  }
}
}  // namespace

std::string NamedSemaphore::random_name() { return detail::make_object_name(); }

NamedSemaphore NamedSemaphore::create(const std::string& name, unsigned value) {
  check_name(name);
  if (value > static_cast<unsigned>(LONG_MAX))
    throw std::system_error(std::make_error_code(std::errc::invalid_argument), "semaphore value too large");
  HANDLE s = CreateSemaphoreW(nullptr, static_cast<LONG>(value), LONG_MAX, win::object_name(name).c_str());
  if (!s) throw_last_error("CreateSemaphoreW(" + name + ")");
  if (GetLastError() == ERROR_ALREADY_EXISTS) {
    CloseHandle(s);
    win::throw_error(ERROR_ALREADY_EXISTS, "CreateSemaphoreW(" + name + ")");
  }
  return NamedSemaphore(s, name);
}

NamedSemaphore NamedSemaphore::open(const std::string& name) {
  check_name(name);
  HANDLE s = OpenSemaphoreW(SEMAPHORE_ALL_ACCESS, FALSE, win::object_name(name).c_str());
  if (!s) throw_last_error("OpenSemaphoreW(" + name + ")");
  return NamedSemaphore(s, name);
}

void NamedSemaphore::unlink(const std::string&) {}  // the name goes with the last handle

NamedSemaphore::NamedSemaphore(NamedSemaphore&& o) noexcept
    : handle_(std::exchange(o.handle_, nullptr)), name_(std::move(o.name_)) {}

NamedSemaphore& NamedSemaphore::operator=(NamedSemaphore&& o) noexcept {
  if (this != &o) {
    close();
    handle_ = std::exchange(o.handle_, nullptr);
    name_ = std::move(o.name_);
  }
  return *this;
}

NamedSemaphore::~NamedSemaphore() { close(); }

void NamedSemaphore::close() noexcept {
  if (handle_ != nullptr) CloseHandle(static_cast<HANDLE>(handle_));
  handle_ = nullptr;
}

bool NamedSemaphore::try_acquire() { return acquire(Seconds(0)); }

bool NamedSemaphore::acquire(Timeout timeout) {
  DWORD ms = INFINITE;
  if (timeout) {
    double t = std::ceil(timeout->count() * 1000.0);
    ms = t <= 0 ? 0 : t >= 4294967294.0 ? 4294967294u : static_cast<DWORD>(t);
  }
  DWORD r = WaitForSingleObject(static_cast<HANDLE>(handle_), ms);
  if (r == WAIT_OBJECT_0) return true;
  if (r == WAIT_TIMEOUT) return false;
  throw_last_error("WaitForSingleObject(semaphore " + name_ + ")");
}

void NamedSemaphore::release() {
  if (!ReleaseSemaphore(static_cast<HANDLE>(handle_), 1, nullptr)) {
    if (GetLastError() == ERROR_TOO_MANY_POSTS)
      throw std::system_error(std::make_error_code(std::errc::value_too_large), "semaphore " + name_ + " at its maximum");
    throw_last_error("ReleaseSemaphore(" + name_ + ")");
  }
}

std::optional<int> NamedSemaphore::value() const {
  // No call reads a semaphore's count: take one if there is one and give it back, reading the
  // count the release reports (CPython's _GetSemaphoreValue). A snapshot, as sem_getvalue's is.
  HANDLE s = static_cast<HANDLE>(handle_);
  if (WaitForSingleObject(s, 0) != WAIT_OBJECT_0) return 0;
  LONG previous = 0;
  if (!ReleaseSemaphore(s, 1, &previous)) return std::nullopt;
  return static_cast<int>(previous) + 1;
}

}  // namespace mp::platform
