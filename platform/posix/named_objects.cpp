#include "platform/named_objects.hpp"

#include <unistd.h>
#include "platform/error.hpp"
#include "platform/semaphore.hpp"
#include "platform/shm.hpp"
#include "mp_config.hpp"

#include <cerrno>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mp::platform {

bool named_objects_persist() noexcept { return true; }

std::uint32_t current_user_id() noexcept { return static_cast<std::uint32_t>(::geteuid()); }

#if MP_HAVE_DEV_SHM
namespace {
constexpr const char* kShmDir = "/dev/shm";

// The /dev/shm file name of an object: "sem.NAME" for a semaphore, "NAME" for shared memory.
std::string file_of(const NamedObject& o) {
  std::string file = o.type == "semaphore" ? "sem." : "";
  file.append(o.name, 1, std::string::npos);
  return file;
}
}  // namespace
#endif

bool can_list_named_objects() noexcept { return MP_HAVE_DEV_SHM != 0; }

std::vector<NamedObject> list_named_objects(const std::string& prefix) {
  std::vector<NamedObject> out;
#if MP_HAVE_DEV_SHM
  if (prefix.empty() || prefix[0] != '/') return out;
  const std::string bare = prefix.substr(1);
  DIR* dir = ::opendir(kShmDir);
  if (dir == nullptr) throw_last_error(std::string("opendir(") + kShmDir + ")");
  while (dirent* e = ::readdir(dir)) {
    std::string file = e->d_name;
    NamedObject o;
    if (file.rfind("sem." + bare, 0) == 0) {
      o.type = "semaphore";
      o.name.assign(1, '/').append(file, 4, std::string::npos);
    } else if (file.rfind(bare, 0) == 0) {
      o.type = "shared_memory";
      o.name.assign(1, '/').append(file);
    } else {
      continue;
    }
    struct stat st;
    if (::stat((std::string(kShmDir) + "/" + file).c_str(), &st) != 0) continue;  // gone meanwhile
    o.size = static_cast<std::uint64_t>(st.st_size);
    o.owner_uid = st.st_uid;
    out.push_back(std::move(o));
  }
  ::closedir(dir);
#else
  // No directory to scan (macOS keeps named semaphores and shared memory in the kernel only).
  (void)prefix;
#endif
  return out;
}

std::vector<NamedObject> find_named_objects(const std::set<std::string>& names) {
  std::vector<NamedObject> out;
  for (const auto& name : names) {
    if (int fd = ::shm_open(name.c_str(), O_RDONLY | O_CLOEXEC, 0); fd >= 0) {
      struct stat st;
      if (::fstat(fd, &st) == 0) {
        out.push_back({"shared_memory", name, static_cast<std::uint64_t>(st.st_size),
                       static_cast<std::uint32_t>(st.st_uid)});
      }
      ::close(fd);
    } else if (errno == EACCES) {
      out.push_back({"shared_memory", name, 0, unknown_owner});
    }
    if (sem_t* sem = ::sem_open(name.c_str(), 0); sem != SEM_FAILED) {
      ::sem_close(sem);
      // No call tells a semaphore's owner. Opened: ours (the library makes them 0600), or we are root.
      out.push_back({"semaphore", name, 0, static_cast<std::uint32_t>(::geteuid())});
    } else if (errno == EACCES) {
      out.push_back({"semaphore", name, 0, unknown_owner});
    }
  }
  return out;
}

std::map<std::string, std::set<int>> processes_mapping(const std::vector<NamedObject>& objects, bool& known) {
  std::map<std::string, std::set<int>> users;
  known = false;
#if MP_HAVE_PROCFS && MP_HAVE_DEV_SHM
  std::map<std::string, std::string> by_path;  // "/dev/shm/<file>" -> name
  for (const auto& o : objects) by_path[std::string(kShmDir) + "/" + file_of(o)] = o.name;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return users;
  known = true;
  while (dirent* e = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    std::ifstream maps(std::string("/proc/") + e->d_name + "/maps");
    for (std::string line; std::getline(maps, line);) {
      auto slash = line.find(" /dev/shm/");
      if (slash == std::string::npos) continue;
      std::string path = line.substr(slash + 1);
      if (auto del = path.find(" (deleted)"); del != std::string::npos) continue;
      if (auto it = by_path.find(path); it != by_path.end()) users[it->second].insert(static_cast<int>(pid));
    }
  }
  ::closedir(proc);
#else
  (void)objects;
#endif
  return users;
}

void remove_named_object(const NamedObject& object) {
  if (object.type == "semaphore") {
    NamedSemaphore::unlink(object.name);
  } else {
    SharedMemorySegment::unlink(object.name);
  }
}

}  // namespace mp::platform
