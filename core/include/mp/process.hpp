// mp/process.hpp - multiprocessing.Process.
#pragma once

#include <mp/authkey.hpp>
#include <mp/exceptions.hpp>
#include <mp/handle.hpp>
#include <mp/task.hpp>
#include <mp/time.hpp>

#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace mp {

class Context;

struct ProcessOptions {
  // Every member has a default member initializer, so designated initializers may name any subset
  // without -Wmissing-field-initializers.
  std::string name{};            // empty: "Process-N1:N2..." as CPython numbers them
  std::optional<bool> daemon{};  // empty: inherited from the creating process
  Context* context = nullptr;    // empty: the default context, resolved at start()
};

namespace detail {
struct ProcessState;
struct ProcessAccess;
}  // namespace detail

// A process running a target (or an overridden run()). Move-only: it owns the child.
class Process {
 public:
  Process();
  explicit Process(ProcessOptions options);

  template <class F, class... Args>
    requires(!std::is_same_v<std::decay_t<F>, ProcessOptions> &&
             !std::is_base_of_v<Process, std::decay_t<F>> &&
             std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>)
  explicit Process(F&& target, Args&&... args)
      : Process(ProcessOptions{}, std::forward<F>(target), std::forward<Args>(args)...) {}

  template <class F, class... Args>
    requires std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>
  Process(ProcessOptions options, F&& target, Args&&... args) : Process(std::move(options)) {
    set_target(detail::make_task(std::forward<F>(target), std::forward<Args>(args)...));
  }

  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  virtual ~Process();

  void start();
  // The child's work: calls the target. Override it in a subclass (register the subclass with
  // MP_TASK_TYPE to start it under spawn/forkserver).
  virtual void run();
  // Waits for the process to end; true once it has ended (false on timeout).
  bool join(Timeout timeout = {});
  bool is_alive();
  void terminate();  // SIGTERM
  void kill();       // SIGKILL
  // Releases the process's resources; only once it has ended.
  void close();

  std::string name() const;
  void name(std::string name);
  bool daemon() const;
  void daemon(bool daemonic);
  std::optional<int> pid() const;
  std::optional<int> ident() const { return pid(); }
  // 0, N from sys_exit(N)/std::exit(N), 1 after an uncaught exception, -N killed by signal N.
  std::optional<int> exitcode();
  const AuthKey& authkey() const;
  void authkey(AuthKey key);
  Sentinel sentinel() const;
  // The start method this process was (or will be) started with.
  std::string start_method() const;

  friend std::ostream& operator<<(std::ostream& os, const Process& p);

 private:
  friend struct detail::ProcessAccess;
  explicit Process(std::shared_ptr<detail::ProcessState> state);
  void set_target(std::unique_ptr<detail::TaskBase> task);
  detail::ProcessState& checked() const;
  std::shared_ptr<detail::ProcessState> state_;
};

// The Process object of the calling process ("MainProcess" in the main process).
Process& current_process();
// The parent, in a child; nullptr in the main process. Its is_alive()/join()/sentinel() work.
Process* parent_process();
// The children still running (finished ones are joined on the way), as handles to them.
std::vector<Process> active_children();
int cpu_count();
// CPUs this process may run on (affinity), as CPython 3.13's os.process_cpu_count().
int process_cpu_count();

// First statement of main(): in a child started by spawn or forkserver it runs the child's work
// and exits, never returning; elsewhere it returns at once.
void freeze_support();

// Called in each child started by this library right after it starts (CPython's
// util.register_after_fork): resets state that must not survive into the child.
void register_after_fork(std::function<void()> fn);

}  // namespace mp
