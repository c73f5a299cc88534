#include "platform/shm.hpp"
#include "platform/error.hpp"
#include "platform/unique_handle.hpp"
#include "core/src/object_name.hpp"
#include "mp_config.hpp"

#include <cerrno>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

namespace mp::platform {

namespace {
void* map(int fd, std::size_t size) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw_last_error("mmap");
  return p;
}
}  // namespace

std::string SharedMemorySegment::random_name() { return detail::make_object_name(); }

SharedMemorySegment SharedMemorySegment::create(const std::string& name, std::size_t size) {
  if (size == 0) throw std::system_error(std::make_error_code(std::errc::invalid_argument), "shared memory of size 0");
  UniqueHandle fd(::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  if (!fd) throw_last_error("shm_open(" + name + ", O_CREAT|O_EXCL)");
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0) {
    auto ec = last_error();
    ::shm_unlink(name.c_str());
    throw std::system_error(ec, "ftruncate(" + name + ")");
  }
  return SharedMemorySegment(map(fd.get(), size), size, name);
}

SharedMemorySegment SharedMemorySegment::open(const std::string& name) {
  UniqueHandle fd(::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0600));
  if (!fd) throw_last_error("shm_open(" + name + ")");
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) throw_last_error("fstat(" + name + ")");
  auto size = static_cast<std::size_t>(st.st_size);
  if (size == 0) throw std::system_error(std::make_error_code(std::errc::invalid_argument), "shared memory " + name + " is empty");
  return SharedMemorySegment(map(fd.get(), size), size, name);
}

SharedMemorySegment SharedMemorySegment::create_anonymous(std::size_t size) {
  if (size == 0) throw std::system_error(std::make_error_code(std::errc::invalid_argument), "shared memory of size 0");
#if MP_HAVE_MEMFD
  UniqueHandle fd(::memfd_create("mp-heap", MFD_CLOEXEC));
  if (!fd) throw_last_error("memfd_create");
#else
  UniqueHandle fd;
  for (int attempt = 0;; ++attempt) {
    std::string name = random_name();
    fd.reset(::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
    if (fd) {
      ::shm_unlink(name.c_str());
      break;
    }
    if (errno != EEXIST || attempt > 8) throw_last_error("shm_open(" + name + ", O_CREAT|O_EXCL)");
  }
#endif
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0) throw_last_error("ftruncate (anonymous shared memory)");
  SharedMemorySegment seg(map(fd.get(), size), size, std::string());
  seg.handle_ = fd.release();
  return seg;
}

SharedMemorySegment SharedMemorySegment::from_handle(native_handle handle) {
  UniqueHandle fd(handle);
  struct stat st;
  if (::fstat(fd.get(), &st) < 0) throw_last_error("fstat (shared memory handle)");
  auto size = static_cast<std::size_t>(st.st_size);
  if (size == 0) throw std::system_error(std::make_error_code(std::errc::invalid_argument), "shared memory handle of size 0");
  SharedMemorySegment seg(map(fd.get(), size), size, std::string());
  seg.handle_ = fd.release();
  return seg;
}

std::string SharedMemorySegment::identity() const {
  struct stat st;
  if (handle_ < 0 || ::fstat(handle_, &st) < 0) return name_;
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

void SharedMemorySegment::unlink(const std::string& name) {
  if (::shm_unlink(name.c_str()) < 0) throw_last_error("shm_unlink(" + name + ")");
}

void SharedMemorySegment::close() noexcept {
  if (data_ != nullptr) ::munmap(data_, size_);
  if (handle_ != invalid_handle) ::close(handle_);
  handle_ = invalid_handle;
  data_ = nullptr;
  size_ = 0;
}

}  // namespace mp::platform
