// mp/context.hpp - start methods and contexts (multiprocessing.get_context and friends).
#pragma once

#include <mp/logging.hpp>
#include <mp/process.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mp {

// A start method and the factory of every object that must be made under it.
class Lock;
class RLock;
class Semaphore;
class BoundedSemaphore;
class Condition;
class Event;
class SemLock;
class Barrier;
template <class T>
class Queue;
template <class T>
class SimpleQueue;
template <class T>
class JoinableQueue;

class Context {
 public:
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // "fork", "spawn" or "forkserver".
  const std::string& get_start_method() const noexcept { return method_; }
  // "ForkProcess", "SpawnProcess", "ForkServerProcess": the class name CPython gives.
  const std::string& process_label() const noexcept { return label_; }

  template <class F, class... Args>
    requires(!std::is_same_v<std::decay_t<F>, ProcessOptions>)
  mp::Process Process(F&& target, Args&&... args) {
    return mp::Process(ProcessOptions{.context = this}, std::forward<F>(target),
                       std::forward<Args>(args)...);
  }
  template <class F, class... Args>
  mp::Process Process(ProcessOptions options, F&& target, Args&&... args) {
    options.context = this;
    return mp::Process(std::move(options), std::forward<F>(target), std::forward<Args>(args)...);
  }

  // The synchronization primitives of this context (<mp/synchronize.hpp>).
  mp::Lock Lock();
  mp::RLock RLock();
  mp::Semaphore Semaphore(int value = 1);
  mp::BoundedSemaphore BoundedSemaphore(int value = 1);
  mp::Condition Condition();
  mp::Condition Condition(const mp::SemLock& lock);
  mp::Event Event();
  mp::Barrier Barrier(int parties, Timeout timeout = {});
  template <class F>
  mp::Barrier Barrier(int parties, F&& action, Timeout timeout = {});
  // Defined in <mp/queues.hpp>.
  template <class T>
  mp::Queue<T> Queue(int maxsize = 0);
  template <class T>
  mp::SimpleQueue<T> SimpleQueue();
  template <class T>
  mp::JoinableQueue<T> JoinableQueue(int maxsize = 0);

 private:
  friend Context& get_context(std::string_view);
  Context(std::string method, std::string label) : method_(std::move(method)), label_(std::move(label)) {}
  std::string method_;
  std::string label_;
};

// The context of `method`, or the default one (which fixes the default start method, as CPython).
// Unknown or unavailable method → mp::ValueError.
Context& get_context(std::string_view method = {});
// Sets the default start method; a second call without `force` → mp::ProcessError.
void set_start_method(std::string_view method, bool force = false);
std::optional<std::string> get_start_method(bool allow_none = false);
// The start methods of this platform, the default first.
std::vector<std::string> get_all_start_methods();
// The program spawn and forkserver run (default: this executable).
void set_executable(std::string path);
std::string get_executable();
// Functions registered with MP_TASK, run once in the forkserver before it forks any child.
void set_forkserver_preload(std::vector<std::string> registered_init_names);

}  // namespace mp
