// Where code lives on Windows: GetModuleHandleExW(FROM_ADDRESS) gives a module's base (its HMODULE);
// its identity is the PE header's link timestamp and image size with the file name, which differ
// between builds of one program.
#include "platform/module.hpp"
#include "platform/windows/win.hpp"

#include <cstdio>

namespace mp::platform {

namespace {
ModuleInfo describe(HMODULE m) {
  ModuleInfo info;
  info.base = reinterpret_cast<std::uintptr_t>(m);
  std::wstring path(MAX_PATH, L'\0');
  DWORD n = GetModuleFileNameW(m, path.data(), static_cast<DWORD>(path.size()));
  path.resize(n);
  if (m != GetModuleHandleW(nullptr)) info.name = win::narrow(path);
  auto* dos = reinterpret_cast<const IMAGE_DOS_HEADER*>(m);
  auto* nt = reinterpret_cast<const IMAGE_NT_HEADERS*>(reinterpret_cast<const char*>(m) + dos->e_lfanew);
  char buf[64];
  std::snprintf(buf, sizeof buf, "pe:%08lx:%08lx", static_cast<unsigned long>(nt->FileHeader.TimeDateStamp),
                static_cast<unsigned long>(nt->OptionalHeader.SizeOfImage));
  info.identity = buf;
  return info;
}
}  // namespace

std::optional<ModuleInfo> module_of(const void* address) {
  HMODULE m = nullptr;
  if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                          static_cast<LPCWSTR>(address), &m))
    return std::nullopt;
  return describe(m);
}

std::optional<ModuleInfo> module_named(const std::string& name) {
  HMODULE m = name.empty() ? GetModuleHandleW(nullptr) : GetModuleHandleW(win::widen(name).c_str());
  if (!m) return std::nullopt;
  return describe(m);
}

}  // namespace mp::platform
