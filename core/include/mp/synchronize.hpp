// mp/synchronize.hpp - the cross-process synchronization primitives (CPython's synchronize.py).
//
// Each is a cheap copyable handle over a named OS object: copies (and the copies children
// receive, under every start method) are the same lock. Lock and RLock meet the standard
// Lockable / TimedLockable requirements, so std::lock_guard, std::unique_lock and std::scoped_lock
// work.
//
// Lock and RLock are a 32-bit word in shared memory that holds the owning process's id: taking a
// free lock is one atomic compare-and-swap, and a thread sleeps in the kernel (futex) only when
// the lock is held. Semaphore and BoundedSemaphore are named OS semaphores (where the OS cannot
// read one's count, as macOS, a word in shared memory beside it keeps the count for get_value()
// and BoundedSemaphore's check).
//
// A Lock or RLock whose holder dies is not a deadlock (CPython, Boost.Interprocess and cpp-ipc
// hang here). A blocked acquirer checks every 100 ms whether the holding process still exists;
// when it does not, the acquirer takes the lock over: acquire() returns true and owner_died()
// tells the new holder that the previous one died holding it (so the state the lock protected
// may be half-updated), as Windows reports an abandoned mutex and POSIX robust mutexes report
// EOWNERDEAD - but with nothing to "make consistent": the lock is simply held. acquire(false)
// never takes over (it does not wait, so it does not look). The check uses the process id, so a
// holder's id reused by a new process within that window would keep the lock held; and processes
// sharing a lock must see one process-id namespace.
#pragma once

#include <mp/codec.hpp>
#include <mp/context.hpp>
#include <mp/exceptions.hpp>
#include <mp/task.hpp>
#include <mp/time.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace mp {

class Context;

namespace detail {
struct SemLockState;
}

// CPython's SemLock: a named semaphore plus this process's view of who holds it.
class SemLock {
 public:
  // Acquires, waiting up to `timeout` when `block` (empty: for ever); false if not acquired.
  bool acquire(bool block = true, Timeout timeout = {});
  void release();

  // Lockable / TimedLockable.
  void lock() { acquire(); }
  bool try_lock() { return acquire(false); }
  void unlock() { release(); }
  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& d) {
    return acquire(true, std::chrono::duration_cast<Seconds>(d));
  }
  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& t) {
    return acquire(true, std::chrono::duration_cast<Seconds>(t - Clock::now()));
  }

  // Held by the calling thread of this process (CPython's _is_mine).
  bool is_mine() const;
  // Lock and RLock: true while the calling thread holds the lock and took it over from a process
  // that died holding it (the data it guards may be inconsistent). Cleared by release().
  bool owner_died() const;
  // How many times the calling process holds it (CPython's _count).
  int count() const;
  const std::string& name() const;

  void save(detail::Encoder& enc) const;
  void load(detail::Decoder& dec);

  // An empty handle, to decode into (any use but load() is an mp::ValueError).
  SemLock() = default;

 protected:
  enum Kind : int { recursive_mutex = 0, semaphore = 1 };
  // lock_kind: a Lock or RLock (a word in shared memory), not a semaphore.
  SemLock(Kind kind, int value, int maxvalue, Context* ctx, bool lock_kind = false);
  std::optional<int> value() const;
  bool acquire_slow(bool block, const Timeout& timeout);
  [[gnu::noinline]] bool acquire_general(bool block, Timeout timeout);
  [[gnu::noinline]] void release_general();
  std::shared_ptr<detail::SemLockState> state_;
  friend class Condition;
};

// (The default constructors are not explicit, so aggregates holding these can be `{}`-initialised.)
class Lock : public SemLock {
 public:
  Lock() : Lock(nullptr) {}
  explicit Lock(Context* ctx);
};

class RLock : public SemLock {
 public:
  RLock() : RLock(nullptr) {}
  explicit RLock(Context* ctx);
};

class Semaphore : public SemLock {
 public:
  Semaphore() : Semaphore(1) {}
  explicit Semaphore(int value, Context* ctx = nullptr);
  // The count (on macOS, where the OS cannot read it, the library's own count of it).
  int get_value() const;

 protected:
  Semaphore(int value, int maxvalue, Context* ctx);
};

// A Semaphore that refuses release() past its initial value (mp::ValueError).
class BoundedSemaphore : public Semaphore {
 public:
  BoundedSemaphore() : BoundedSemaphore(1) {}
  explicit BoundedSemaphore(int value, Context* ctx = nullptr);
};

// CPython's Condition over a Lock or RLock (an RLock by default), with its own lock Lockable.
class Condition {
 public:
  Condition() : Condition(std::nullopt) {}
  explicit Condition(std::optional<SemLock> lock, Context* ctx = nullptr);
  bool acquire(bool block = true, Timeout timeout = {}) { return lock_.acquire(block, timeout); }
  void release() { lock_.release(); }
  void lock() { lock_.lock(); }
  bool try_lock() { return lock_.try_lock(); }
  void unlock() { lock_.unlock(); }
  // Must hold the lock (mp::AssertionError otherwise); false on timeout.
  bool wait(Timeout timeout = {});
  // Waits until pred() is true or the timeout passes; returns pred()'s last value.
  bool wait_for(const std::function<bool()>& pred, Timeout timeout = {});
  void notify(int n = 1);
  void notify_all();
  SemLock& get_lock() { return lock_; }

  template <class A>
  void serialize(A& a) { a(lock_, sleeping_count_, woken_count_, wait_semaphore_); }

 private:
  SemLock lock_;
  Semaphore sleeping_count_{0};
  Semaphore woken_count_{0};
  Semaphore wait_semaphore_{0};
};

namespace detail {
struct EventState;
}

// One word in shared memory: set() and clear() are single atomic operations, and set() enters
// the kernel only when someone is waiting.
class Event {
 public:
  Event() : Event(nullptr) {}
  explicit Event(Context* ctx);
  bool is_set() const;
  void set();
  void clear();
  // True once the flag is set, false if the timeout passed first.
  bool wait(Timeout timeout = {});

  void save(detail::Encoder& enc) const;
  void load(detail::Decoder& dec);

 private:
  std::shared_ptr<detail::EventState> state_;
};

namespace detail {
struct BarrierShared;
}  // namespace detail

// CPython's Barrier (threading.Barrier over a Condition and two shared integers): `parties`
// processes or threads meet at wait(); the last to arrive runs `action` (any callable; under
// spawn/forkserver a plain function, captureless lambda or MP_TASK_TYPE object, as a Process
// target) and releases them all. A timeout or abort() breaks it: mp::BrokenBarrierError.
class Barrier {
 public:
  Barrier() = default;  // a placeholder to decode into
  explicit Barrier(int parties, Timeout timeout = {}, Context* ctx = nullptr)
      : Barrier(Made{}, parties, nullptr, timeout, ctx) {}
  Barrier(int parties, std::nullptr_t, Timeout timeout = {}, Context* ctx = nullptr)
      : Barrier(Made{}, parties, nullptr, timeout, ctx) {}
  template <class F>
    requires std::is_invocable_v<std::decay_t<F>&>
  Barrier(int parties, F&& action, Timeout timeout = {}, Context* ctx = nullptr)
      : Barrier(Made{}, parties, make_action(std::forward<F>(action)), timeout, ctx) {}

  // The arrival index (0 .. parties-1); empty timeout: the barrier's own.
  int wait(Timeout timeout = {});
  void reset();
  void abort();
  int parties() const;
  int n_waiting() const;
  bool broken() const;

  void save(detail::Encoder& enc) const;
  void load(detail::Decoder& dec);

 private:
  template <class F>
  static std::shared_ptr<detail::TaskBase> make_action(F&& f) {
    if constexpr (std::is_constructible_v<bool, const std::decay_t<F>&>) {
      if (!static_cast<bool>(f)) return nullptr;  // an empty std::function or null pointer
    }
    return std::shared_ptr<detail::TaskBase>(detail::make_task(std::forward<F>(f)));
  }
  struct Made {};
  Barrier(Made, int parties, std::shared_ptr<detail::TaskBase> action, Timeout timeout, Context* ctx);
  std::shared_ptr<detail::BarrierShared> shared_;
};

template <class F>
Barrier Context::Barrier(int parties, F&& action, Timeout timeout) {
  return mp::Barrier(parties, std::forward<F>(action), timeout, this);
}

namespace detail {
template <>
struct handle_type<Barrier> : std::true_type {};
template <>
struct handle_type<Event> : std::true_type {};
template <>
struct handle_type<SemLock> : std::true_type {};
template <>
struct handle_type<Lock> : std::true_type {};
template <>
struct handle_type<RLock> : std::true_type {};
template <>
struct handle_type<Semaphore> : std::true_type {};
template <>
struct handle_type<BoundedSemaphore> : std::true_type {};
}  // namespace detail

}  // namespace mp
