// mp/futures.hpp - concurrent.futures over processes: ProcessPoolExecutor, Future, as_completed,
// wait.
//
// ProcessPoolExecutor runs on the same workers, task queue and result queue as mp::Pool (tasks are
// the same kinds of callables: plain functions, captureless lambdas, MP_TASK_TYPE objects). As
// CPython's: at most max_workers + 1 tasks are handed to the workers at a time, so a future still
// queued here can be cancelled; a worker that dies breaks the executor - every future not yet
// finished fails with mp::BrokenProcessPool (within milliseconds: the pool watches its workers'
// sentinels) and submit() throws it from then on. There is no limit on the number of workers
// (CPython caps it at 61 on Windows).
#pragma once

#include <mp/pool.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mp {

struct ExecutorOptions {
  std::optional<int> max_workers{};       // empty: process_cpu_count()
  Context* mp_context = nullptr;          // empty: the default context
  Initializer initializer{};
  std::optional<int> max_tasks_per_child{};  // a worker is replaced after this many tasks
};

// concurrent.futures.wait's return_when.
enum class ReturnWhen { FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED };
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::FIRST_COMPLETED;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::FIRST_EXCEPTION;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::ALL_COMPLETED;

namespace detail {

// Woken by each future it is registered with when that future completes (as_completed, wait).
class Waiter {
 public:
  void notify() {
    {
      std::lock_guard lk(m);
      ++events;
    }
    cv.notify_all();
  }
  std::mutex m;
  CondVar cv;
  std::size_t events = 0;
};

class FutureStateBase : public JobBase {
 public:
  enum class Status { pending, running, cancelled, finished };
  ~FutureStateBase() override;
  // CPython's Future.cancel(): only a future that has not started can be cancelled.
  bool cancel();
  bool cancelled() const;
  bool running() const;
  bool done() const;
  // Waits until done (finished or cancelled); false on timeout.
  bool wait(Timeout timeout) const;
  // After done: the exception (nullptr if none); mp::CancelledError if cancelled.
  std::exception_ptr error() const;
  // Marks the future handed to a worker; false if it was cancelled first.
  bool set_running();
  void add_waiter(const std::shared_ptr<Waiter>& w);
  void remove_waiter(const Waiter* w);
  // Runs `cb` when done (now, in this thread, if it is done already).
  void add_done_callback(std::function<void()> cb);
  // The executor's hook, run after completion (not after cancel()).
  void set_on_complete(std::function<void()> hook);
  bool deliver_error(std::size_t, std::size_t, std::exception_ptr error) override;
  void abandon(std::exception_ptr error) override { (void)deliver_error(0, 0, std::move(error)); }

 protected:
  // Under m_ with the outcome stored: marks it finished, wakes waiters, runs the callbacks.
  void finish(std::unique_lock<std::mutex>& lk);
  mutable std::mutex m_;
  Status status_ = Status::pending;

 private:
  void notify_done(std::unique_lock<std::mutex>& lk, bool completed);
  mutable CondVar cv_;
  std::exception_ptr error_;
  std::vector<std::shared_ptr<Waiter>> waiters_;
  std::vector<std::function<void()>> callbacks_;
  std::function<void()> on_complete_;
};

template <class T>
struct is_vector : std::false_type {};
template <class T, class A>
struct is_vector<std::vector<T, A>> : std::true_type {};

template <class T>
class FutureState final : public FutureStateBase {
 public:
  using Stored = stored_t<T>;
  // `chunk`: T is a vector and each item of a task record is one element (executor map chunks).
  explicit FutureState(bool chunk = false) : chunk_(chunk) {}
  bool deliver_encoded(std::size_t, std::size_t count, Decoder& dec) override {
    Stored v{};
    if constexpr (is_vector<T>::value) {
      if (chunk_) {
        v.resize(count);
        for (auto& e : v) dec(e);
      } else {
        dec(v);
      }
    } else if constexpr (!std::is_void_v<T>) {
      (void)count;
      dec(v);
    }
    set_value(std::move(v));
    return true;
  }
  void set_value(Stored v) {
    std::unique_lock lk(m_);
    if (status_ == Status::finished || status_ == Status::cancelled) return;
    value_ = std::move(v);
    finish(lk);
  }
  const Stored& value() const {
    std::lock_guard lk(m_);
    return *value_;
  }

 private:
  bool chunk_;
  std::optional<Stored> value_;
};

class ExecutorCore;

}  // namespace detail

template <class T>
class Future {
 public:
  Future() = default;
  explicit Future(std::shared_ptr<detail::FutureState<T>> s) : s_(std::move(s)) {}

  // The result, waiting up to `timeout` (mp::TimeoutError); the task's exception re-thrown;
  // mp::CancelledError if it was cancelled.
  T result(Timeout timeout = {}) const {
    if (!state().wait(timeout)) throw TimeoutError();
    if (auto e = state().error()) std::rethrow_exception(e);
    if constexpr (!std::is_void_v<T>) return s_->value();
  }
  // The task's exception (nullptr if it succeeded); mp::TimeoutError; mp::CancelledError.
  std::exception_ptr exception(Timeout timeout = {}) const {
    if (!state().wait(timeout)) throw TimeoutError();
    return state().error();
  }
  bool done() const { return state().done(); }
  bool running() const { return state().running(); }
  bool cancelled() const { return state().cancelled(); }
  bool cancel() { return state().cancel(); }
  // fn(future) once the future is done: at once if it is, else in the thread that completes it.
  void add_done_callback(std::function<void(const Future<T>&)> fn) const {
    state().add_done_callback([self = *this, fn = std::move(fn)] { fn(self); });
  }
  friend bool operator==(const Future& a, const Future& b) { return a.s_ == b.s_; }
  detail::FutureStateBase& state() const {
    if (!s_) throw ValueError("Future: no state (default-constructed)");
    return *s_;
  }

 private:
  std::shared_ptr<detail::FutureState<T>> s_;
};

template <class T>
struct DoneAndNotDone {
  std::vector<Future<T>> done;
  std::vector<Future<T>> not_done;
};

namespace detail {
// Unique futures, in first-seen order (as CPython's set of futures).
template <class T>
std::vector<Future<T>> unique_futures(const std::vector<Future<T>>& fs) {
  std::vector<Future<T>> out;
  for (const auto& f : fs) {
    bool seen = false;
    for (const auto& o : out) seen = seen || o == f;
    if (!seen) out.push_back(f);
  }
  return out;
}
}  // namespace detail

// concurrent.futures.as_completed: the futures as they complete (those done already first).
// Iterate it, or call next(); mp::TimeoutError when `timeout` passes with futures unfinished.
template <class T>
class AsCompleted {
 public:
  AsCompleted(const std::vector<Future<T>>& fs, Timeout timeout)
      : waiter_(std::make_shared<detail::Waiter>()), pending_(detail::unique_futures(fs)),
        deadline_(detail::deadline_from(timeout)) {
    for (auto& f : pending_) f.state().add_waiter(waiter_);
  }
  AsCompleted(const AsCompleted&) = delete;
  AsCompleted& operator=(const AsCompleted&) = delete;
  ~AsCompleted() {
    for (auto& f : pending_) f.state().remove_waiter(waiter_.get());
  }

  std::optional<Future<T>> next() {
    for (;;) {
      for (std::size_t i = 0; i < pending_.size(); ++i) {
        if (pending_[i].done()) {
          Future<T> f = pending_[i];
          f.state().remove_waiter(waiter_.get());
          pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
          ++yielded_;
          return f;
        }
      }
      if (pending_.empty()) return std::nullopt;
      std::unique_lock lk(waiter_->m);
      const std::size_t seen = waiter_->events;
      auto changed = [&] { return waiter_->events != seen; };
      if (!deadline_) {
        waiter_->cv.wait(lk, changed);
      } else {
        while (!changed()) {
          if (!waiter_->cv.wait_until(lk, *deadline_) && !changed()) {
            throw TimeoutError(std::to_string(pending_.size()) + " (of " + std::to_string(total()) +
                               ") futures unfinished");
          }
        }
      }
    }
  }

  using iterator = detail::NextIterator<AsCompleted, Future<T>>;
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const { return {}; }

 private:
  std::size_t total() const { return pending_.size() + yielded_; }
  std::shared_ptr<detail::Waiter> waiter_;
  std::vector<Future<T>> pending_;
  std::size_t yielded_ = 0;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
};

template <class T>
AsCompleted<T> as_completed(const std::vector<Future<T>>& fs, Timeout timeout = {}) {
  return AsCompleted<T>(fs, timeout);
}

// concurrent.futures.wait: returns when return_when is met or `timeout` passes.
template <class T>
DoneAndNotDone<T> wait(const std::vector<Future<T>>& fs, Timeout timeout = {},
                       ReturnWhen return_when = ALL_COMPLETED) {
  auto unique = detail::unique_futures(fs);
  auto waiter = std::make_shared<detail::Waiter>();
  for (auto& f : unique) f.state().add_waiter(waiter);
  auto deadline = detail::deadline_from(timeout);
  auto met = [&] {
    std::size_t done = 0;
    for (auto& f : unique) {
      if (!f.done()) continue;
      ++done;
      if (return_when == FIRST_COMPLETED) return true;
      if (return_when == FIRST_EXCEPTION && !f.cancelled() && f.state().error()) return true;
    }
    return done == unique.size();
  };
  for (;;) {
    std::unique_lock lk(waiter->m);
    const std::size_t seen = waiter->events;
    lk.unlock();
    if (met()) break;
    lk.lock();
    if (waiter->events != seen) continue;
    if (!deadline) {
      waiter->cv.wait(lk, [&] { return waiter->events != seen; });
    } else if (!waiter->cv.wait_until(lk, *deadline) && waiter->events == seen) {
      break;
    }
  }
  DoneAndNotDone<T> out;
  for (auto& f : unique) {
    f.state().remove_waiter(waiter.get());
    (f.done() ? out.done : out.not_done).push_back(f);
  }
  return out;
}

namespace detail {

// The executor's scheduling: work waits here until fewer than max_workers + 1 tasks are out.
class ExecutorCore : public std::enable_shared_from_this<ExecutorCore> {
 public:
  static std::shared_ptr<ExecutorCore> make(const ExecutorOptions& options);
  ~ExecutorCore();
  // Queues a future; `dispatch` hands it to the pool (called once, if it was not cancelled).
  void submit(const std::shared_ptr<FutureStateBase>& future, std::function<void()> dispatch);
  void shutdown(bool wait, bool cancel_futures);
  ProcessSubmitter submitter() const { return ProcessSubmitter{pool_}; }
  PoolCoreBase& pool() const { return as_base(*pool_); }
  int max_workers() const noexcept { return max_workers_; }

 private:
  ExecutorCore() = default;
  struct Item {
    std::shared_ptr<FutureStateBase> future;
    std::function<void()> dispatch;
  };
  void pump();
  void on_done();
  void on_broken(const std::string& why);
  std::mutex m_;
  CondVar cv_;
  std::deque<Item> pending_;
  int in_flight_ = 0;
  int max_workers_ = 1;
  bool shutdown_ = false;
  bool pool_closed_ = false;
  bool joined_ = false;
  std::string broken_;
  std::shared_ptr<ProcessPoolCore> pool_;
};

}  // namespace detail

// The results of ProcessPoolExecutor::map, in input order; each waits until the deadline that
// map's timeout set (mp::TimeoutError). Dropping it cancels what has not started.
template <class R>
class ExecutorMapResults {
 public:
  ExecutorMapResults(std::vector<Future<std::vector<R>>> chunks,
                     std::optional<std::chrono::steady_clock::time_point> deadline)
      : chunks_(std::move(chunks)), deadline_(deadline) {}
  ExecutorMapResults(ExecutorMapResults&&) noexcept = default;
  ExecutorMapResults& operator=(ExecutorMapResults&&) noexcept = default;
  ~ExecutorMapResults() { cancel_rest(); }

  std::optional<R> next() {
    while (at_ >= current_.size()) {
      if (next_chunk_ >= chunks_.size()) return std::nullopt;
      try {
        current_ = chunks_[next_chunk_].result(detail::time_left(deadline_));
      } catch (...) {
        ++next_chunk_;
        cancel_rest();
        throw;
      }
      ++next_chunk_;
      at_ = 0;
    }
    return std::move(current_[at_++]);
  }
  // All the results (the first exception re-thrown).
  std::vector<R> to_vector() {
    std::vector<R> out;
    while (auto v = next()) out.push_back(std::move(*v));
    return out;
  }

  using iterator = detail::NextIterator<ExecutorMapResults, R>;
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const { return {}; }

 private:
  void cancel_rest() {
    for (std::size_t i = next_chunk_; i < chunks_.size(); ++i) chunks_[i].cancel();
    next_chunk_ = chunks_.size();
  }
  std::vector<Future<std::vector<R>>> chunks_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  std::size_t next_chunk_ = 0;
  std::vector<R> current_;
  std::size_t at_ = 0;
};

class ProcessPoolExecutor {
 public:
  explicit ProcessPoolExecutor(ExecutorOptions options = {}) : core_(detail::ExecutorCore::make(options)) {}
  explicit ProcessPoolExecutor(int max_workers)
      : ProcessPoolExecutor(ExecutorOptions{.max_workers = max_workers}) {}
  ProcessPoolExecutor(ProcessPoolExecutor&&) noexcept = default;
  ProcessPoolExecutor& operator=(ProcessPoolExecutor&&) noexcept = default;
  // shutdown(wait=true), as leaving Python's with-block.
  ~ProcessPoolExecutor() {
    if (core_) {
      try {
        core_->shutdown(true, false);
      } catch (...) {
      }
    }
  }

  template <class F, class... A>
  auto submit(F&& f, A&&... args) {
    using Fn = std::decay_t<F>;
    using Args = std::tuple<std::decay_t<A>...>;
    using R = std::decay_t<std::invoke_result_t<Fn&, std::decay_t<A>&&...>>;
    auto state = std::make_shared<detail::FutureState<R>>();
    auto sub = core().submitter();
    auto program = sub.template prepare<R, Args>(Fn(std::forward<F>(f)));
    auto args_tuple = std::make_shared<const Args>(std::forward<A>(args)...);
    detail::PoolCoreBase* pool = &core().pool();
    std::weak_ptr<detail::FutureState<R>> weak = state;
    core().submit(state, [pool, sub, program, args_tuple, weak] {
      auto st = weak.lock();
      if (!st) return;
      pool->add_job(st);
      try {
        sub.template submit_chunk<R>(st, program, 0, std::span<const Args>(args_tuple.get(), 1), 0);
      } catch (...) {
        pool->job_done(st->id);
        throw;
      }
    });
    return Future<R>(state);
  }

  template <class F, class Range>
  auto map(F&& f, Range&& input, Timeout timeout = {}, std::size_t chunksize = 1) {
    using Fn = std::decay_t<F>;
    using Elem = detail::range_elem_t<Range>;
    using Args = std::tuple<Elem>;
    using R = std::decay_t<std::invoke_result_t<Fn&, Elem&&>>;
    static_assert(!std::is_void_v<R>, "ProcessPoolExecutor::map: the function must return a value");
    if (chunksize < 1) throw ValueError("chunksize must be >= 1.");
    auto deadline = detail::deadline_from(timeout);
    auto sub = core().submitter();
    auto program = sub.template prepare<R, Args>(Fn(std::forward<F>(f)));
    detail::PoolCoreBase* pool = &core().pool();
    std::vector<Future<std::vector<R>>> chunks;
    auto items = std::make_shared<std::vector<Args>>();
    for (auto&& e : input) items->emplace_back(e);
    for (std::size_t first = 0; first < items->size(); first += chunksize) {
      const std::size_t n = std::min(chunksize, items->size() - first);
      auto state = std::make_shared<detail::FutureState<std::vector<R>>>(true);
      std::weak_ptr<detail::FutureState<std::vector<R>>> weak = state;
      core().submit(state, [pool, sub, program, items, first, n, weak] {
        auto st = weak.lock();
        if (!st) return;
        pool->add_job(st);
        try {
          sub.template submit_chunk<R>(st, program, 0, std::span<const Args>(items->data() + first, n), 0);
        } catch (...) {
          pool->job_done(st->id);
          throw;
        }
      });
      chunks.push_back(Future<std::vector<R>>(state));
    }
    return ExecutorMapResults<R>(std::move(chunks), deadline);
  }

  // No new work; with `wait`, returns once every submitted future is done and the workers ended.
  // `cancel_futures` cancels what has not started.
  void shutdown(bool wait = true, bool cancel_futures = false) { core().shutdown(wait, cancel_futures); }
  int max_workers() const { return core().max_workers(); }

 private:
  detail::ExecutorCore& core() const {
    if (!core_) throw ValueError("ProcessPoolExecutor: moved-from");
    return *core_;
  }
  std::shared_ptr<detail::ExecutorCore> core_;
};

}  // namespace mp
