// platform/named_objects.hpp - finding the library's named OS objects on this machine (for
// mp-tracker): which exist, how big, and which processes have them mapped.
#pragma once
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace mp::platform {

inline constexpr std::uint32_t unknown_owner = 0xffffffffu;

struct NamedObject {
  std::string type;  // "semaphore" or "shared_memory" (the resource tracker's type names)
  std::string name;  // as passed to sem_open / shm_open: "/mp-..."
  std::uint64_t size = 0;
  std::uint32_t owner_uid = 0;  // unknown_owner where the OS does not say
};

// Whether a named semaphore or shared-memory segment outlives the processes that made it until it
// is removed (POSIX), so a crash can leak it and the resource tracker has work; false on Windows,
// where the OS frees a named object with its last handle.
bool named_objects_persist() noexcept;
// Whether this system can enumerate named semaphores and shared memory (glibc: files in /dev/shm;
// macOS keeps them in the kernel, with no way to list them).
bool can_list_named_objects() noexcept;
// The objects whose names start with `prefix` (e.g. "/mp-"); empty where they cannot be listed.
std::vector<NamedObject> list_named_objects(const std::string& prefix);
// Those of `names` that exist, found by opening each (never creating): works where listing does
// not. The size of shared memory; the owner where the OS says.
std::vector<NamedObject> find_named_objects(const std::set<std::string>& names);
// For each of `objects`, the processes that have it mapped, where the OS tells (/proc/<pid>/maps;
// processes of other users may be invisible). `known` is false where it cannot tell at all.
std::map<std::string, std::set<int>> processes_mapping(const std::vector<NamedObject>& objects, bool& known);
// The effective user id objects are owned by (0: the superuser, who may remove anyone's).
std::uint32_t current_user_id() noexcept;
// Removes one (sem_unlink / shm_unlink).
void remove_named_object(const NamedObject& object);

}  // namespace mp::platform
