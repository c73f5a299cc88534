// core/src/process_state.hpp - what a Process handle refers to, and this process's own identity.
#pragma once
#include <mp/authkey.hpp>
#include <mp/context.hpp>
#include <mp/process.hpp>
#include <mp/task.hpp>

#include "platform/unique_handle.hpp"
#include "popen.hpp"
#include "wire.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace mp::detail {

enum class Role {
  child,    // a process this one created (or will create)
  current,  // this very process
  parent,   // this process's parent, seen from the child
};

struct ProcessState {
  mutable std::mutex mutex;
  Role role = Role::child;
  std::string name;              // fixed at start() or first read, unless set explicitly
  bool name_fixed = false;
  std::vector<int> identity;     // CPython's _identity: the parent's plus this child's number
  std::string label = "Process"; // "Process", "ForkProcess", ..., or a subclass's name
  std::optional<bool> daemon;
  AuthKey authkey;
  std::optional<int> parent_pid;
  Context* context = nullptr;
  std::string start_method;
  std::unique_ptr<TaskBase> task;
  std::shared_ptr<Popen> popen;  // shared: a join() in progress keeps it alive across close()
  bool closed = false;
  // Role::parent: the parent's pid and the handle that reads EOF when it is gone.
  int pid = 0;
  native_handle_t parent_sentinel = invalid_native_handle;
};

// The bytes a spawned or forkserver child starts from (CPython's preparation data + process obj).
struct PrepData {
  std::uint32_t magic = 0x6d700002;
  std::string name;
  std::vector<int> identity;
  std::string label;
  bool daemon = false;
  AuthKey authkey;
  int parent_pid = 0;
  std::string parent_name;
  int log_level = 0;
  bool log_to_stderr = false;
  std::string start_method;
  std::string executable;
  std::vector<std::string> forkserver_preload;
  TaskDescriptor task;
  std::uint32_t handle_count = 0;  // the task's handles, then the tracker's pipe if present
  bool tracker = false;            // the last handle is the resource tracker's pipe
  int tracker_pid = -1;
  template <class A>
  void serialize(A& a) {
    a(magic, name, identity, label, daemon, authkey, parent_pid, parent_name, log_level, log_to_stderr,
      start_method, executable, forkserver_preload, task, handle_count, tracker, tracker_pid);
  }
};

struct ProcessAccess {
  static std::shared_ptr<ProcessState>& state(Process& p) { return p.state_; }
  static Process make(std::shared_ptr<ProcessState> s) { return Process(std::move(s)); }
};

// Bumped in every forked child: objects holding per-process state (lock counters) compare it to
// the value they saw to notice that they now live in a child.
extern std::atomic<unsigned> g_fork_generation;
inline unsigned fork_generation() noexcept { return g_fork_generation.load(std::memory_order_relaxed); }

// The name of this process, for log lines ("MainProcess" in the main process).
std::string current_process_name();

// The child side of the fork start method (called in the child right after fork()).
[[noreturn]] void run_fork_child(Process& self, int parent_pid, platform::UniqueHandle status,
                                 platform::UniqueHandle control);
// The child side of spawn and forkserver: reads PrepData from `control` and runs it.
[[noreturn]] void run_prepared_child(platform::UniqueHandle control, platform::UniqueHandle status,
                                     std::vector<platform::UniqueHandle> handles);
// Child side of the forkserver start method: the server's loop (never returns).
[[noreturn]] void forkserver_main();

// The ProcessError CPython raises when a child starts processes before bootstrapping.
void check_bootstrapped();
// Runs `hook` at the end of this process's exit (after its children are joined), in the main
// process and in children alike (CPython's finalizers with a negative exit priority).
void register_exit_hook(void (*hook)());
// Runs `hook` at the start of this process's exit, before its daemonic children are terminated
// (CPython's finalizers with a priority >= 0, such as the one that terminates a Pool).
void register_early_exit_hook(void (*hook)());
bool in_child_bootstrap() noexcept;

// Every Process this process started and has not yet seen end.
void track_child(std::shared_ptr<ProcessState> s);
// The start method to use for a process with this context.
std::string resolve_start_method(Context* ctx);
std::vector<std::string> forkserver_preload_names();

}  // namespace mp::detail

namespace mp::detail {
int bootstrap_with_parent(Process& self, const std::string& parent_name, int parent_pid,
                          const std::function<void()>& body);
}  // namespace mp::detail
