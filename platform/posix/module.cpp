// Where code lives. With dl_iterate_phdr (Linux, the BSDs) every loaded ELF object is listed with
// its base and its GNU build-id note; without it (macOS) dladdr gives the base and the identity is
// the file's device, inode, size and modification time.
#include "platform/module.hpp"
#include "platform/process.hpp"
#include "mp_config.hpp"

#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <sys/stat.h>
#if MP_HAVE_DL_ITERATE_PHDR
#include <link.h>
#endif

namespace mp::platform {

namespace {

std::string hex(const unsigned char* p, std::size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(2 * n);
  for (std::size_t i = 0; i < n; ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

std::string file_identity(const char* path) {
  struct stat st;
  if (path == nullptr || ::stat(path, &st) != 0) return {};
  char buf[128];
  std::snprintf(buf, sizeof buf, "file:%llx:%llx:%llx:%llx", static_cast<unsigned long long>(st.st_dev),
                static_cast<unsigned long long>(st.st_ino), static_cast<unsigned long long>(st.st_size),
                static_cast<unsigned long long>(st.st_mtime));
  return buf;
}

#if MP_HAVE_DL_ITERATE_PHDR
struct Search {
  std::uintptr_t address = 0;    // find the module holding this address, or
  const std::string* name = nullptr;  // the module of this name
  bool first = true;
  std::optional<ModuleInfo> found;
};

std::string build_id(dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    auto* p = reinterpret_cast<const unsigned char*>(info->dlpi_addr + ph.p_vaddr);
    auto* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      auto* note = reinterpret_cast<const ElfW(Nhdr)*>(p);
      const unsigned char* name = p + sizeof(ElfW(Nhdr));
      const unsigned char* desc = name + ((note->n_namesz + 3) & ~3u);
      if (note->n_type == NT_GNU_BUILD_ID && note->n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0) {
        return "build-id:" + hex(desc, note->n_descsz);
      }
      p = desc + ((note->n_descsz + 3) & ~3u);
    }
  }
  return {};
}

int visit(dl_phdr_info* info, size_t, void* data) {
  auto* s = static_cast<Search*>(data);
  // The first object listed is the main program; its name is "" whatever the loader reports.
  std::string name = s->first ? std::string() : std::string(info->dlpi_name ? info->dlpi_name : "");
  s->first = false;
  bool match = false;
  if (s->name != nullptr) {
    match = name == *s->name;
  } else {
    for (int i = 0; i < info->dlpi_phnum && !match; ++i) {
      const auto& ph = info->dlpi_phdr[i];
      if (ph.p_type != PT_LOAD) continue;
      std::uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
      match = s->address >= lo && s->address < lo + ph.p_memsz;
    }
  }
  if (!match) return 0;
  ModuleInfo m;
  m.name = name;
  m.base = info->dlpi_addr;
  m.identity = build_id(info);
  if (m.identity.empty()) m.identity = file_identity(name.empty() ? executable_path().c_str() : name.c_str());
  s->found = m;
  return 1;
}
#endif

}  // namespace

std::optional<ModuleInfo> module_of(const void* address) {
#if MP_HAVE_DL_ITERATE_PHDR
  Search s;
  s.address = reinterpret_cast<std::uintptr_t>(address);
  dl_iterate_phdr(&visit, &s);
  return s.found;
#else
  Dl_info info;
  if (::dladdr(address, &info) == 0 || info.dli_fbase == nullptr) return std::nullopt;
  ModuleInfo m;
  m.base = reinterpret_cast<std::uintptr_t>(info.dli_fbase);
  m.name = info.dli_fname ? info.dli_fname : "";
  // The main program: its handle is the one dlopen(NULL) returns.
  Dl_info main_info;
  void* main_sym = ::dlsym(RTLD_DEFAULT, "main");
  if (main_sym && ::dladdr(main_sym, &main_info) && main_info.dli_fbase == info.dli_fbase) m.name.clear();
  m.identity = file_identity(info.dli_fname);
  return m;
#endif
}

std::optional<ModuleInfo> module_named(const std::string& name) {
#if MP_HAVE_DL_ITERATE_PHDR
  Search s;
  s.name = &name;
  dl_iterate_phdr(&visit, &s);
  return s.found;
#else
  void* sym = nullptr;
  if (name.empty()) {
    sym = ::dlsym(RTLD_DEFAULT, "main");
  } else {
    void* h = ::dlopen(name.c_str(), RTLD_NOW | RTLD_NOLOAD);
    if (h == nullptr) return std::nullopt;
    Dl_info probe;
    // Any exported symbol of the module locates its base; use the module's own handle lookup.
    sym = ::dlsym(h, "_init");
    ::dlclose(h);
    if (sym && ::dladdr(sym, &probe) == 0) sym = nullptr;
  }
  if (sym == nullptr) return std::nullopt;
  return module_of(sym);
#endif
}

}  // namespace mp::platform
