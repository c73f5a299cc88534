#include <mp/task.hpp>

#include "platform/module.hpp"
#include "platform/process.hpp"

#include <cstdlib>
#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#define MP_HAVE_CXXABI 1
#endif
#include <map>
#include <mutex>

namespace mp::detail {

namespace {
struct Registry {
  std::mutex mutex;
  std::map<std::string, TaskRegistration, std::less<>> by_name;
};
Registry& registry() {
  static Registry r;  // constructed on first registration, during static initialisation
  return r;
}
}  // namespace

void register_task(TaskRegistration reg) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.by_name.find(reg.name);
  if (it != r.by_name.end()) {
    // The same registration seen from several translation units is fine.
    if (it->second.function == reg.function && it->second.type == reg.type) return;
    if (reg.type && it->second.type && *it->second.type == *reg.type) return;
    platform::write_stderr("mp: two different tasks are registered under the name '" + reg.name +
                           "' (MP_TASK / MP_TASK_TYPE); names must be unique\n");
    std::abort();
  }
  std::string name = reg.name;
  r.by_name.emplace(std::move(name), std::move(reg));
}

const TaskRegistration* find_task(std::string_view name) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.by_name.find(name);
  return it == r.by_name.end() ? nullptr : &it->second;
}

const TaskRegistration* find_task_by_function(const void* function) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  for (auto& [name, reg] : r.by_name) {
    if (reg.function == function) return &reg;
  }
  return nullptr;
}

const TaskRegistration* find_task_by_type(const std::type_info& type) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  for (auto& [name, reg] : r.by_name) {
    if (reg.type && *reg.type == type) return &reg;
  }
  return nullptr;
}

std::string demangle(const char* mangled) {
#if !defined(MP_HAVE_CXXABI)
  return mangled;  // MSVC's type names are readable already ("class std::runtime_error")
#else
  int status = 0;
  char* s = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (status != 0 || s == nullptr) return mangled;
  std::string out(s);
  std::free(s);
  return out;
#endif
}

CodeRef locate_code(const void* address) {
  auto m = platform::module_of(address);
  if (!m) throw ProcessError("mp: the code at this address belongs to no loaded module, so a new process cannot find it");
  CodeRef ref;
  ref.module = m->name;
  ref.identity = m->identity;
  ref.offset = reinterpret_cast<std::uintptr_t>(address) - m->base;
  return ref;
}

void* resolve_code(const CodeRef& ref) {
  auto m = platform::module_named(ref.module);
  std::string what = ref.module.empty() ? std::string("the executable") : "module " + ref.module;
  if (!m) throw ProcessError("mp: " + what + " is not loaded in this process, so the target cannot be found");
  if (m->identity != ref.identity) {
    throw ProcessError("mp: " + what + " is not the binary the parent runs (identity " + m->identity + " vs " +
                       ref.identity + "); register the target with MP_TASK / MP_TASK_TYPE to find it by name");
  }
  return reinterpret_cast<void*>(m->base + ref.offset);
}

void run_task(const TaskDescriptor& task, Decoder& dec) {
  switch (task.kind) {
    case TaskDescriptor::none:
      return;
    case TaskDescriptor::by_name: {
      const TaskRegistration* reg = find_task(task.name);
      if (reg == nullptr) {
        throw ProcessError("mp: no task named '" + task.name + "' is registered in this executable (MP_TASK / MP_TASK_TYPE)");
      }
      reg->trampoline(dec);
      return;
    }
    case TaskDescriptor::by_address:
      reinterpret_cast<Trampoline>(resolve_code(task.entry))(dec);
      return;
    default:
      throw DecodeError("mp: unknown task kind");
  }
}

}  // namespace mp::detail
