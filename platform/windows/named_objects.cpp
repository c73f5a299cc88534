// Named objects on Windows cannot leak: a semaphore or file mapping goes with its last handle,
// which the OS closes when a process ends however it ends. There is nothing for mp-tracker to find
// or remove, and Windows has no call that lists a session's named objects by prefix.
#include "platform/named_objects.hpp"
#include "platform/semaphore.hpp"
#include "platform/shm.hpp"

namespace mp::platform {

bool named_objects_persist() noexcept { return false; }
bool can_list_named_objects() noexcept { return false; }
std::vector<NamedObject> list_named_objects(const std::string&) { return {}; }
std::vector<NamedObject> find_named_objects(const std::set<std::string>& names) {
  // Found by opening each: one exists while some process holds a handle to it.
  std::vector<NamedObject> out;
  for (const auto& name : names) {
    try {
      auto seg = SharedMemorySegment::open(name);
      out.push_back({"shared_memory", name, seg.size(), unknown_owner});
    } catch (const std::exception&) {
    }
    try {
      NamedSemaphore::open(name);
      out.push_back({"semaphore", name, 0, unknown_owner});
    } catch (const std::exception&) {
    }
  }
  return out;
}

std::map<std::string, std::set<int>> processes_mapping(const std::vector<NamedObject>&, bool& known) {
  known = false;
  return {};
}
std::uint32_t current_user_id() noexcept { return 1; }  // no uid; nothing is listed to compare
void remove_named_object(const NamedObject&) {}

}  // namespace mp::platform
