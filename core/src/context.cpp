// Contexts and start methods (CPython's context.py).
#include "process_state.hpp"

#include <mp/context.hpp>

#include "platform/process.hpp"

#include <mutex>

namespace mp {

namespace {
struct ContextGlobals {
  std::mutex mutex;
  std::optional<std::string> actual;  // the start method fixed by set_start_method / first use
  std::string executable;
  std::vector<std::string> preload;
};
ContextGlobals& cg() {
  static ContextGlobals* g = new ContextGlobals;
  return *g;
}

// The platform's methods, default first (forkserver on POSIX, as CPython 3.14 on Linux).
const std::vector<std::string>& available_methods() {
#if defined(_WIN32)
  static const std::vector<std::string> methods{"spawn"};
#else
  static const std::vector<std::string> methods{"forkserver", "fork", "spawn"};
#endif
  return methods;
}

void check_method(std::string_view method) {
  for (const auto& m : available_methods()) {
    if (m == method) return;
  }
  throw ValueError("cannot find context for '" + std::string(method) + "'");
}
}  // namespace

}  // namespace mp

// Friend of Context: the only place that constructs contexts.
mp::Context& mp::get_context(std::string_view method) {
  static Context fork_ctx("fork", "ForkProcess");
  static Context spawn_ctx("spawn", "SpawnProcess");
  static Context forkserver_ctx("forkserver", "ForkServerProcess");
  std::string m;
  if (method.empty()) {
    ContextGlobals& g = cg();
    std::lock_guard lock(g.mutex);
    if (!g.actual) g.actual = available_methods().front();
    m = *g.actual;
  } else {
    check_method(method);
    m = method;
  }
  if (m == "fork") return fork_ctx;
  if (m == "spawn") return spawn_ctx;
  return forkserver_ctx;
}

namespace mp {

void set_start_method(std::string_view method, bool force) {
  ContextGlobals& g = cg();
  std::lock_guard lock(g.mutex);
  if (g.actual && !force) throw ProcessError("context has already been set");
  if (method.empty() && force) {
    g.actual.reset();
    return;
  }
  check_method(method);
  g.actual = std::string(method);
}

std::optional<std::string> get_start_method(bool allow_none) {
  ContextGlobals& g = cg();
  std::lock_guard lock(g.mutex);
  if (!g.actual) {
    if (allow_none) return std::nullopt;
    g.actual = available_methods().front();
  }
  return g.actual;
}

std::vector<std::string> get_all_start_methods() { return available_methods(); }

void set_executable(std::string path) {
  ContextGlobals& g = cg();
  std::lock_guard lock(g.mutex);
  g.executable = std::move(path);
}

std::string get_executable() {
  ContextGlobals& g = cg();
  std::lock_guard lock(g.mutex);
  if (g.executable.empty()) g.executable = platform::executable_path();
  return g.executable;
}

void set_forkserver_preload(std::vector<std::string> names) {
  for (const auto& n : names) {
    const detail::TaskRegistration* reg = detail::find_task(n);
    if (reg == nullptr || reg->function == nullptr) {
      throw ValueError("set_forkserver_preload: '" + n + "' is not a function registered with MP_TASK");
    }
  }
  ContextGlobals& g = cg();
  std::lock_guard lock(g.mutex);
  g.preload = std::move(names);
}

namespace detail {

std::string resolve_start_method(Context* ctx) {
  if (ctx != nullptr) return ctx->get_start_method();
  return *get_start_method(false);
}

std::vector<std::string> forkserver_preload_names() {
  ContextGlobals& g = cg();
  std::lock_guard lock(g.mutex);
  return g.preload;
}

}  // namespace detail
}  // namespace mp
