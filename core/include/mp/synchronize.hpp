// mp/synchronize.hpp - the cross-process synchronization primitives (CPython's synchronize.py).
//
// Each is a cheap copyable handle over named OS semaphores: copies (and the copies children
// receive, under every start method) are the same lock. Lock and RLock meet the standard
// Lockable / TimedLockable requirements, so std::lock_guard, std::unique_lock and std::scoped_lock
// work.
#pragma once

#include <mp/codec.hpp>
#include <mp/exceptions.hpp>
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
  // How many times the calling process holds it (CPython's _count).
  int count() const;
  const std::string& name() const;

  void save(detail::Encoder& enc) const;
  void load(detail::Decoder& dec);

 protected:
  enum Kind : int { recursive_mutex = 0, semaphore = 1 };
  SemLock() = default;
  SemLock(Kind kind, int value, int maxvalue, Context* ctx);
  std::optional<int> value() const;
  std::shared_ptr<detail::SemLockState> state_;
  friend class Condition;
};

class Lock : public SemLock {
 public:
  explicit Lock(Context* ctx = nullptr);
};

class RLock : public SemLock {
 public:
  explicit RLock(Context* ctx = nullptr);
};

class Semaphore : public SemLock {
 public:
  explicit Semaphore(int value = 1, Context* ctx = nullptr);
  // The count (where the OS reports it; see README for macOS).
  int get_value() const;

 protected:
  Semaphore(int value, int maxvalue, Context* ctx);
};

// A Semaphore that refuses release() past its initial value (mp::ValueError).
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(int value = 1, Context* ctx = nullptr);
};

// CPython's Condition over a Lock or RLock (an RLock by default), with its own lock Lockable.
class Condition {
 public:
  explicit Condition(std::optional<SemLock> lock = {}, Context* ctx = nullptr);
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

class Event {
 public:
  explicit Event(Context* ctx = nullptr);
  bool is_set();
  void set();
  void clear();
  bool wait(Timeout timeout = {});

  template <class A>
  void serialize(A& a) { a(cond_, flag_); }

 private:
  Condition cond_;
  Semaphore flag_;
};

namespace detail {
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
