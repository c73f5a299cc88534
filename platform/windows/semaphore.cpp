// Named semaphores on Windows: CreateSemaphoreW in the session namespace ("Local\mp-...").
// The OS removes the name with the last handle, so unlink has nothing to do and nothing can leak.
// Semaphores and file mappings share one namespace there: a semaphore's object name gets a suffix,
// so a shared-memory segment of the same library name (SemLock's count, below) can coexist.
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
std::wstring sem_object_name(const std::string& name) { return win::object_name(name) + L".sem"; }
}  // namespace

std::string NamedSemaphore::random_name() { return detail::make_object_name(); }

NamedSemaphore NamedSemaphore::create(const std::string& name, unsigned value) {
  check_name(name);
  if (value > static_cast<unsigned>(LONG_MAX))
    throw std::system_error(std::make_error_code(std::errc::invalid_argument), "semaphore value too large");
  HANDLE s = CreateSemaphoreW(nullptr, static_cast<LONG>(value), LONG_MAX, sem_object_name(name).c_str());
  if (!s) throw_last_error("CreateSemaphoreW(" + name + ")");
  if (GetLastError() == ERROR_ALREADY_EXISTS) {
    CloseHandle(s);
    win::throw_error(ERROR_ALREADY_EXISTS, "CreateSemaphoreW(" + name + ")");
  }
  return NamedSemaphore(s, name);
}

NamedSemaphore NamedSemaphore::open(const std::string& name) {
  check_name(name);
  HANDLE s = OpenSemaphoreW(SEMAPHORE_ALL_ACCESS, FALSE, sem_object_name(name).c_str());
  if (!s) throw_last_error("OpenSemaphoreW(" + name + ")");
  return NamedSemaphore(s, name);
}

void NamedSemaphore::unlink(const std::string&) {}  // the name goes with the last handle

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

// No call reads a semaphore's count. CPython takes a unit and gives it back to read the count the
// release reports, which another process's reading at the same moment gets wrong; here the count
// is kept beside the semaphore in shared memory instead (SemLock's counter), as on macOS.
bool NamedSemaphore::can_read_value() noexcept { return false; }
std::optional<int> NamedSemaphore::value() const { return std::nullopt; }

}  // namespace mp::platform
