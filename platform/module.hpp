// platform/module.hpp - which loaded module holds an address, and its identity (build-id).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace mp::platform {
struct ModuleInfo {
  std::string name;       // "" for the main executable
  std::uintptr_t base = 0;
  std::string identity;   // GNU build-id in hex, or a file identity
};
std::optional<ModuleInfo> module_of(const void* address);
std::optional<ModuleInfo> module_named(const std::string& name);
}  // namespace mp::platform
