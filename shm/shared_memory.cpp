// SharedMemory: CPython's multiprocessing.shared_memory.SharedMemory over the platform seam.
//
// The mapping is the seam's (platform/shm.hpp: shm_open + ftruncate + mmap, mode 0600,
// close-on-exec). Native calls rather than Boost.Interprocess's shared_memory_object +
// mapped_region here: those wrap the same three calls, but report errors as their own
// interprocess_exception (we owe users std::system_error with CPython's errno) and do not take
// O_CLOEXEC. Boost.Interprocess is used where it adds real value: the allocator of the shared
// heap under Value/Array (sharedctypes).
#include <mp/resource_tracker.hpp>
#include <mp/shared_memory.hpp>

#include "platform/shm.hpp"

#include <system_error>

namespace mp::detail {

struct SharedMemoryState {
  platform::SharedMemorySegment segment;
  std::string name;       // as the user sees it: no leading '/'
  std::string os_name;    // as the OS sees it: "/" + name
  std::size_t size = 0;
  bool closed = false;

  ~SharedMemoryState() = default;
};

namespace {
std::string os_name_of(const std::string& name) {
  std::string bare = name;
  while (!bare.empty() && bare.front() == '/') bare.erase(bare.begin());  // "/x" is taken as "x"
  if (bare.empty()) throw ValueError("SharedMemory: the name is empty");
  if (bare.find('/') != std::string::npos) throw ValueError("SharedMemory: a name cannot contain '/': " + name);
  if (bare.size() > 254) throw ValueError("SharedMemory: the name is longer than 254 characters");
  return "/" + bare;
}
}  // namespace

}  // namespace mp::detail

namespace mp {

using detail::SharedMemoryState;

SharedMemory::SharedMemory(std::optional<std::string> name, bool create, std::size_t size, bool track) {
  auto s = std::make_shared<SharedMemoryState>();
  if (!create) {
    if (!name) throw ValueError("SharedMemory: 'name' can only be omitted when create=true");
    s->os_name = detail::os_name_of(*name);
    s->segment = platform::SharedMemorySegment::open(s->os_name);
  } else {
    if (size == 0) throw ValueError("'size' must be a positive number different from zero");
    if (name) {
      s->os_name = detail::os_name_of(*name);
      s->segment = platform::SharedMemorySegment::create(s->os_name, size);
    } else {
      // A fresh unguessable name, retried in the astronomically unlikely event it exists.
      for (int attempt = 0;; ++attempt) {
        s->os_name = platform::SharedMemorySegment::random_name();
        try {
          s->segment = platform::SharedMemorySegment::create(s->os_name, size);
          break;
        } catch (const std::system_error& e) {
          if (e.code() != std::errc::file_exists || attempt > 8) throw;
        }
      }
    }
    if (track) {
      try {
        resource_tracker::register_resource(s->os_name, "shared_memory");
      } catch (...) {
        platform::SharedMemorySegment::unlink(s->os_name);
        throw;
      }
    }
  }
  s->name = s->os_name.substr(1);
  s->size = s->segment.size();
  state_ = std::move(s);
}

SharedMemoryState& SharedMemory::live() const {
  if (!state_) throw ValueError("SharedMemory: use of an uninitialised object");
  return *state_;
}

const std::string& SharedMemory::name() const { return live().name; }
std::size_t SharedMemory::size() const { return live().size; }
bool SharedMemory::closed() const { return !state_ || state_->closed; }

std::span<std::byte> SharedMemory::buf() const {
  SharedMemoryState& s = live();
  if (s.closed) throw ValueError("SharedMemory '" + s.name + "': operation on a closed segment (close() was called)");
  return s.segment.bytes().first(s.size);
}

void SharedMemory::close() {
  SharedMemoryState& s = live();
  s.segment.close();
  s.closed = true;
}

void SharedMemory::unlink() {
  SharedMemoryState& s = live();
  platform::SharedMemorySegment::unlink(s.os_name);
  // The name is gone, whoever removed it: the tree's tracker must not try again. (A process
  // that never talked to a tracker sends nothing.)
  try {
    resource_tracker::unregister_resource(s.os_name, "shared_memory");
  } catch (const std::exception&) {
    // No tracker to tell: it would only find the name already gone.
  }
}

void SharedMemory::save(detail::Encoder& enc) const { enc(live().name); }

void SharedMemory::load(detail::Decoder& dec) {
  std::string name;
  dec(name);
  *this = SharedMemory(name, false);
}

}  // namespace mp
