// mp/pool.hpp - multiprocessing.Pool and multiprocessing.pool.ThreadPool.
//
// Pool(PoolOptions{.processes = 4}) starts worker processes (under the pool's context: fork, spawn
// or forkserver) that take tasks from a shared queue and send results back on another. The API
// is CPython's: apply / apply_async / map / map_async / imap / imap_unordered / starmap /
// starmap_async, close / terminate / join; AsyncResult's get / wait / ready / successful. The
// destructor terminates, as Python's `with Pool() as p:` does.
//
// What a task may be: as a Process target - a plain function (found by address, or by name when
// registered with MP_TASK), a captureless lambda, or an object of a type registered with
// MP_TASK_TYPE - with arguments and a result that mp::codec can carry. A task's exception comes
// back with its type (standard exceptions, mp's, and types registered with MP_EXCEPTION; others as
// mp::RemoteError naming the type).
//
// Beyond CPython: a worker that dies mid-task (killed, abort(), a crash) never hangs the pool. The
// task it held fails with an mp::ProcessError naming the worker and its exit code, the worker is
// replaced, and every other task completes.
//
// ThreadPool has the same surface over threads: any callable, any argument types, nothing encoded.
#pragma once

#include <mp/codec.hpp>
#include <mp/context.hpp>
#include <mp/exceptions.hpp>
#include <mp/range.hpp>
#include <mp/task.hpp>
#include <mp/time.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

namespace mp {

// Something to run once in each worker before its first task (CPython's initializer + initargs):
// Initializer(fn, args...). Under spawn and forkserver it travels as a Process target does.
class Initializer {
 public:
  Initializer() = default;
  Initializer(std::nullptr_t) {}
  template <class F, class... A>
    requires(!std::is_same_v<std::decay_t<F>, Initializer> && !std::is_same_v<std::decay_t<F>, std::nullptr_t> &&
             std::is_invocable_v<std::decay_t<F>&, const std::decay_t<A>&...>)
  Initializer(F&& f, A&&... args)  // NOLINT: implicit, so PoolOptions{.initializer = fn} reads well
      : task_(detail::make_task(std::forward<F>(f), std::forward<A>(args)...)) {}
  explicit operator bool() const noexcept { return task_ != nullptr; }
  void operator()() const {
    if (task_) task_->call();
  }
  const std::shared_ptr<detail::TaskBase>& task() const noexcept { return task_; }

 private:
  std::shared_ptr<detail::TaskBase> task_;
};

struct PoolOptions {
  std::optional<int> processes{};  // empty: process_cpu_count()
  Initializer initializer{};
  int maxtasksperchild = 0;  // 0: workers live as long as the pool
  Context* context = nullptr;  // empty: the default context
};

namespace detail {

// ---- callbacks: any callable with a concrete parameter type, checked against the result -------
template <class F>
struct callable_arg : callable_arg<decltype(&F::operator())> {};
#define MP_DETAIL_CALLABLE_ARG(QUAL)                                  \
  template <class R, class C, class P>                                \
  struct callable_arg<R (C::*)(P) QUAL> {                             \
    using type = std::decay_t<P>;                                     \
  };                                                                  \
  template <class R, class C>                                         \
  struct callable_arg<R (C::*)() QUAL> {                              \
    using type = void;                                                \
  };
MP_DETAIL_CALLABLE_ARG()
MP_DETAIL_CALLABLE_ARG(const)
MP_DETAIL_CALLABLE_ARG(noexcept)
MP_DETAIL_CALLABLE_ARG(const noexcept)
#undef MP_DETAIL_CALLABLE_ARG
template <class R, class P>
struct callable_arg<R (*)(P)> {
  using type = std::decay_t<P>;
};
template <class R>
struct callable_arg<R (*)()> {
  using type = void;
};
template <class R, class P>
struct callable_arg<R (*)(P) noexcept> : callable_arg<R (*)(P)> {};
template <class R>
struct callable_arg<R (*)() noexcept> : callable_arg<R (*)()> {};

std::string type_label(const std::type_info& t);

}  // namespace detail

// A success callback of any concrete signature; apply_async/map_async check it against the result
// type (mp::ValueError on a mismatch).
class Callback {
 public:
  Callback() = default;
  Callback(std::nullptr_t) {}
  template <class F>
    requires(!std::is_same_v<std::decay_t<F>, Callback> && !std::is_same_v<std::decay_t<F>, std::nullptr_t>)
  Callback(F&& f) {  // NOLINT: implicit, for AsyncOptions{.callback = ...}
    using Fn = std::decay_t<F>;
    using Arg = typename detail::callable_arg<Fn>::type;
    arg_ = &typeid(std::conditional_t<std::is_void_v<Arg>, void, Arg>);
    call_ = [fn = Fn(std::forward<F>(f))](const void* value) mutable {
      if constexpr (std::is_void_v<Arg>) {
        (void)value;
        fn();
      } else {
        fn(*static_cast<const Arg*>(value));
      }
    };
  }
  explicit operator bool() const noexcept { return static_cast<bool>(call_); }
  template <class T>
  std::function<void(const T&)> bind() const {
    check(typeid(T));
    return [call = call_](const T& v) { call(&v); };
  }
  std::function<void()> bind_void() const {
    check(typeid(void));
    return [call = call_] { call(nullptr); };
  }

 private:
  void check(const std::type_info& t) const {
    if (*arg_ != t) {
      throw ValueError("the callback takes " + detail::type_label(*arg_) + " but the result is " +
                       detail::type_label(t));
    }
  }
  std::function<void(const void*)> call_;
  const std::type_info* arg_ = nullptr;
};

// apply_async / map_async / starmap_async options (CPython's callback= and error_callback=). Both
// run in the pool's result-handling thread (a ThreadPool's worker thread), before get() returns.
struct AsyncOptions {
  Callback callback{};
  std::function<void(std::exception_ptr)> error_callback{};
};

namespace detail {

// ---- jobs: what the pool's cache holds ------------------------------------------------------------
class JobBase {
 public:
  virtual ~JobBase() = default;
  // Results of items [first, first + count) as a worker process encoded them. True when the job
  // is finished (it then leaves the pool's cache).
  virtual bool deliver_encoded(std::size_t first, std::size_t count, Decoder& dec) = 0;
  // Items [first, first + count) failed: their task threw, or their worker died.
  virtual bool deliver_error(std::size_t first, std::size_t count, std::exception_ptr error) = 0;
  // The pool ends (terminate) before the job did.
  virtual void abandon(std::exception_ptr error) = 0;
  // A lazily fed job whose input is exhausted and whose results have all arrived.
  virtual bool finished() const { return false; }
  std::uint64_t id = 0;
};

void report_callback_error(const char* which) noexcept;

// When a timeout ends (none: never), and the time left until then.
inline std::optional<std::chrono::steady_clock::time_point> deadline_from(Timeout timeout) {
  if (!timeout) return std::nullopt;
  return std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(*timeout);
}
inline Timeout time_left(const std::optional<std::chrono::steady_clock::time_point>& deadline) {
  if (!deadline) return std::nullopt;
  return std::chrono::duration_cast<Seconds>(*deadline - std::chrono::steady_clock::now());
}

// std::condition_variable behind a pointer (its header brings <semaphore.h> with it, and public
// headers include no OS header).
class CondVar {
 public:
  CondVar();
  ~CondVar();
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;
  void notify_all() noexcept;
  void wait(std::unique_lock<std::mutex>& lk);
  // False on timeout.
  bool wait_until(std::unique_lock<std::mutex>& lk, std::chrono::steady_clock::time_point deadline);
  template <class Pred>
  void wait(std::unique_lock<std::mutex>& lk, Pred pred) {
    while (!pred()) wait(lk);
  }
  template <class Pred>
  bool wait_for(std::unique_lock<std::mutex>& lk, Seconds timeout, Pred pred) {
    const auto deadline = *deadline_from(timeout);
    while (!pred()) {
      if (!wait_until(lk, deadline)) return pred();
    }
    return true;
  }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

template <class T>
using stored_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// The state behind AsyncResult<T>.
template <class T>
class AsyncState : public JobBase {
 public:
  using Stored = stored_t<T>;
  bool wait(Timeout timeout) {
    std::unique_lock lk(m_);
    if (!timeout) {
      cv_.wait(lk, [&] { return ready_; });
      return true;
    }
    return cv_.wait_for(lk, *timeout, [&] { return ready_; });
  }
  bool ready() const {
    std::lock_guard lk(m_);
    return ready_;
  }
  bool successful() const {
    std::lock_guard lk(m_);
    if (!ready_) throw ValueError("the result is not ready");
    return !error_;
  }
  // After wait(): the value, or the task's exception re-thrown.
  const Stored& value() const {
    std::lock_guard lk(m_);
    if (error_) std::rethrow_exception(error_);
    return *value_;
  }
  Stored take() {
    std::lock_guard lk(m_);
    if (error_) std::rethrow_exception(error_);
    return std::move(*value_);
  }
  void set_callbacks(std::function<void(const Stored&)> callback, std::function<void(std::exception_ptr)> errback) {
    callback_ = std::move(callback);
    error_callback_ = std::move(errback);
  }
  void abandon(std::exception_ptr error) override { complete(std::nullopt, std::move(error)); }

 protected:
  // Completes once (later calls are ignored): the callback runs, then waiters wake.
  bool complete(std::optional<Stored> value, std::exception_ptr error) {
    {
      std::lock_guard lk(m_);
      if (completing_) return false;
      completing_ = true;
      value_ = std::move(value);
      error_ = std::move(error);
    }
    if (!error_ && callback_) {
      try {
        callback_(*value_);
      } catch (...) {
        report_callback_error("callback");
      }
    } else if (error_ && error_callback_) {
      try {
        error_callback_(error_);
      } catch (...) {
        report_callback_error("error_callback");
      }
    }
    {
      std::lock_guard lk(m_);
      ready_ = true;
    }
    cv_.notify_all();
    return true;
  }
  mutable std::mutex m_;

 private:
  CondVar cv_;
  bool ready_ = false;
  bool completing_ = false;
  std::optional<Stored> value_;
  std::exception_ptr error_;
  std::function<void(const Stored&)> callback_;
  std::function<void(std::exception_ptr)> error_callback_;
};

// apply_async: one result.
template <class R>
class ApplyState final : public AsyncState<R> {
 public:
  using Stored = stored_t<R>;
  bool deliver_encoded(std::size_t, std::size_t, Decoder& dec) override {
    Stored v{};
    if constexpr (!std::is_void_v<R>) dec(v);
    this->complete(std::move(v), nullptr);
    return true;
  }
  bool deliver_error(std::size_t, std::size_t, std::exception_ptr error) override {
    this->complete(std::nullopt, std::move(error));
    return true;
  }
  bool deliver_value(Stored v) {
    this->complete(std::move(v), nullptr);
    return true;
  }
};

// map_async / starmap_async: n results, in chunks; the first failure fails the whole (CPython).
template <class E>
class MapState final : public AsyncState<std::vector<E>> {
 public:
  MapState(std::size_t n, std::size_t chunksize) : chunksize_(chunksize ? chunksize : 1) {
    items_.resize(n);
    chunk_done_.assign((n + chunksize_ - 1) / chunksize_, 0);
    remaining_ = chunk_done_.size();
  }
  bool deliver_encoded(std::size_t first, std::size_t count, Decoder& dec) override {
    if constexpr (std::is_default_constructible_v<E>) {
      std::unique_lock lk(this->m_);
      if (!claim(first, count)) return false;
      for (std::size_t i = first; i < first + count; ++i) dec(items_[i]);
      return finish_chunk(lk);
    } else {
      (void)first, (void)count, (void)dec;
      return false;
    }
  }
  bool deliver_values(std::size_t first, std::vector<E>&& values) {
    std::unique_lock lk(this->m_);
    if (!claim(first, values.size())) return false;
    for (std::size_t i = 0; i < values.size(); ++i) items_[first + i] = std::move(values[i]);
    return finish_chunk(lk);
  }
  bool deliver_error(std::size_t first, std::size_t count, std::exception_ptr error) override {
    {
      std::lock_guard lk(this->m_);
      if (!claim(first, count)) return false;
    }
    this->complete(std::nullopt, std::move(error));
    return true;
  }
  // No input: ready at once, with no callback (CPython).
  void complete_empty() {
    this->set_callbacks(nullptr, nullptr);
    this->complete(std::vector<E>{}, nullptr);
  }

 private:
  using Slot = std::conditional_t<std::is_default_constructible_v<E>, E, std::optional<E>>;
  // Whether this chunk's result is the first to arrive (a duplicate - the task rerun after its
  // first worker died mid-dequeue - is ignored). Under the lock.
  bool claim(std::size_t first, std::size_t) {
    std::size_t c = first / chunksize_;
    if (c >= chunk_done_.size() || chunk_done_[c]) return false;
    chunk_done_[c] = 1;
    return true;
  }
  bool finish_chunk(std::unique_lock<std::mutex>& lk) {
    if (--remaining_ != 0) return false;
    std::vector<E> out;
    if constexpr (std::is_default_constructible_v<E>) {
      out = std::move(items_);
    } else {
      out.reserve(items_.size());
      for (auto& s : items_) out.push_back(std::move(*s));
    }
    lk.unlock();
    this->complete(std::move(out), nullptr);
    return true;
  }
  std::size_t chunksize_;
  std::vector<Slot> items_;
  std::vector<char> chunk_done_;
  std::size_t remaining_ = 0;
};

class PoolCoreBase;

// imap / imap_unordered: results handed out one by one, as they come (in order, or not); the
// input is read lazily, a window of chunks ahead of the consumer.
template <class E>
class IMapState final : public JobBase, public std::enable_shared_from_this<IMapState<E>> {
 public:
  using Entry = std::variant<E, std::exception_ptr>;
  IMapState(bool ordered, std::size_t chunksize, std::size_t window)
      : ordered_(ordered), chunksize_(chunksize ? chunksize : 1), window_(window) {}

  // `feed(max, error)` submits up to `max` more items (whole chunks) and returns how many it
  // submitted; 0 means the input is exhausted; `error` is set when reading the input threw (the
  // items before it were submitted, and are counted).
  using Feeder = std::function<std::size_t(std::size_t, std::exception_ptr&)>;
  void set_feeder(Feeder feed) { feed_ = std::move(feed); }

  bool deliver_encoded(std::size_t first, std::size_t count, Decoder& dec) override {
    std::vector<Entry> got;
    got.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      if constexpr (std::is_default_constructible_v<E>) {
        E v{};
        dec(v);
        got.emplace_back(std::in_place_index<0>, std::move(v));
      }
    }
    return store(first, std::move(got));
  }
  bool deliver_values(std::size_t first, std::vector<E>&& values) {
    std::vector<Entry> got;
    got.reserve(values.size());
    for (auto& v : values) got.emplace_back(std::in_place_index<0>, std::move(v));
    return store(first, std::move(got));
  }
  bool deliver_error(std::size_t first, std::size_t count, std::exception_ptr error) override {
    std::vector<Entry> got(count, Entry(std::in_place_index<1>, error));
    return store(first, std::move(got));
  }
  void abandon(std::exception_ptr error) override {
    std::lock_guard lk(m_);
    abandoned_ = error;
    cv_.notify_all();
  }

  // The next result: nullopt at the end; mp::TimeoutError if none comes in time; the task's
  // exception re-thrown for an item that failed.
  std::optional<E> next(Timeout timeout) {
    const auto deadline = deadline_from(timeout);
    std::unique_lock lk(m_);
    for (;;) {
      if (auto e = pop_locked()) {
        lk.unlock();
        if (e->index() == 1) std::rethrow_exception(std::get<1>(*e));
        return std::move(std::get<0>(*e));
      }
      if (abandoned_) std::rethrow_exception(abandoned_);
      if (exhausted_ && handed_out_ == fed_) {
        // The input's own exception comes out where the input failed, once (as CPython's imap).
        if (auto e = std::exchange(input_error_, nullptr)) std::rethrow_exception(e);
        return std::nullopt;
      }
      if (!exhausted_ && !feeding_ && fed_ - handed_out_ < window_ * chunksize_) {
        feed_more(lk);
        continue;
      }
      if (!deadline) {
        cv_.wait(lk);
      } else if (!cv_.wait_until(lk, *deadline) && !peek_locked()) {
        throw TimeoutError();
      }
    }
  }
  // Submits whatever input is left (close() does this, so join() can finish).
  void feed_all() {
    std::unique_lock lk(m_);
    while (!exhausted_ && !abandoned_) {
      if (feeding_) {
        cv_.wait(lk);
        continue;
      }
      feed_more(lk, static_cast<std::size_t>(-1));
    }
  }
  // Whether every item has been submitted and its result has arrived.
  bool finished() const override {
    std::lock_guard lk(m_);
    return exhausted_ && received_ == fed_;
  }

 private:
  void feed_more(std::unique_lock<std::mutex>& lk, std::size_t max = 0) {
    if (max == 0) max = window_ * chunksize_ - (fed_ - handed_out_);
    feeding_ = true;
    lk.unlock();
    std::size_t n = 0;
    std::exception_ptr failed;
    try {
      n = feed_(max, failed);
    } catch (...) {
      failed = std::current_exception();
    }
    lk.lock();
    feeding_ = false;
    if (failed) {
      exhausted_ = true;
      input_error_ = failed;
    } else if (n == 0) {
      exhausted_ = true;
    }
    fed_ += n;
    cv_.notify_all();
  }
  // Under m_: marks the chunk received; stores its entries.
  bool store(std::size_t first, std::vector<Entry>&& got) {
    std::unique_lock lk(m_);
    std::size_t c = first / chunksize_;
    if (c >= chunk_done_.size()) chunk_done_.resize(std::max(c + 1, chunk_done_.size() * 2), 0);
    if (chunk_done_[c]) return false;
    chunk_done_[c] = 1;
    received_ += got.size();
    if (ordered_) {
      std::size_t at = first - handed_out_;
      if (ready_.size() < at + got.size()) ready_.resize(at + got.size());
      for (std::size_t i = 0; i < got.size(); ++i) ready_[at + i] = std::move(got[i]);
    } else {
      for (auto& e : got) ready_.emplace_back(std::move(e));
    }
    bool done = exhausted_ && received_ == fed_;
    lk.unlock();
    cv_.notify_all();
    return done;
  }
  bool peek_locked() const { return !ready_.empty() && ready_.front().has_value(); }
  std::optional<Entry> pop_locked() {
    if (!peek_locked()) return std::nullopt;
    std::optional<Entry> e = std::move(ready_.front());
    ready_.pop_front();
    ++handed_out_;
    return e;
  }

  const bool ordered_;
  const std::size_t chunksize_;
  const std::size_t window_;
  Feeder feed_;
  mutable std::mutex m_;
  CondVar cv_;
  std::deque<std::optional<Entry>> ready_;
  std::vector<char> chunk_done_;
  std::size_t fed_ = 0, received_ = 0, handed_out_ = 0;
  bool exhausted_ = false, feeding_ = false;
  std::exception_ptr abandoned_;    // the pool ended first
  std::exception_ptr input_error_;  // reading the input threw
};

// ---- the pool machinery shared by Pool and ThreadPool (core/src/pool.cpp) -------------------------
class PoolCoreBase : public std::enable_shared_from_this<PoolCoreBase> {
 public:
  virtual ~PoolCoreBase();
  // Enters a job in the cache and gives it an id; mp::ValueError when the pool takes no work.
  void add_job(const std::shared_ptr<JobBase>& job);
  // A job finished or abandoned by its owner: it leaves the cache.
  void job_done(std::uint64_t id);
  // A lazily fed job (imap): close() feeds the rest of its input.
  void add_lazy(std::uint64_t id, std::function<void()> feed_all);
  int processes() const noexcept { return processes_; }
  void close();
  void terminate();
  // Stops the workers now; every job not finished fails with `reason`.
  void terminate(const std::exception_ptr& reason);
  void join();
  // The end of Python's with-block (destructors): terminate(), then join(); errors go to stderr.
  void terminate_and_join() noexcept;
  bool running() const;

 protected:
  enum class State { run, close, terminate };
  // Backend hooks, called without the lock.
  virtual void on_idle_after_close() = 0;  // closed, cache empty: workers may stop
  virtual void on_terminate() = 0;         // stop workers now
  virtual void on_join() = 0;              // wait for the workers and handler threads
  std::shared_ptr<JobBase> find_job(std::uint64_t id);
  void abandon_all(const std::exception_ptr& error);
  mutable std::mutex mutex_;
  State state_ = State::run;
  int processes_ = 0;

 private:
  void maybe_idle_locked(std::unique_lock<std::mutex>& lk);
  std::map<std::uint64_t, std::shared_ptr<JobBase>> jobs_;
  std::map<std::uint64_t, std::function<void()>> lazy_;
  std::uint64_t next_id_ = 1;
  bool idle_signalled_ = false;
  bool joined_ = false;
};

// What travels in a task record for a callable (resolved in the worker once per distinct prefix).
struct PoolFunction {
  void* function = nullptr;                // a plain function
  std::span<const std::byte> object;       // an MP_TASK_TYPE object's encoding
};
using PoolTrampoline = void (*)(const PoolFunction& fn, Decoder& in, std::uint32_t count, Encoder& out);

// The process backend: task and result queues, worker processes, a result thread and a monitor
// thread that notices a worker's death.
class ProcessPoolCore;
// With `on_broken`, a worker's unexpected end is reported there (the executor's broken pool)
// instead of failing its task and replacing it.
std::shared_ptr<ProcessPoolCore> make_process_pool(const PoolOptions& options,
                                                   std::function<void(const std::string&)> on_broken = nullptr);
void process_pool_submit(ProcessPoolCore& core, std::span<const std::byte> task);
PoolCoreBase& as_base(ProcessPoolCore& core);

// The thread backend.
class ThreadPoolCore;
std::shared_ptr<ThreadPoolCore> make_thread_pool(const PoolOptions& options);
void thread_pool_submit(ThreadPoolCore& core, std::function<void()> work);
PoolCoreBase& as_base(ThreadPoolCore& core);

// Task record layout (process pools): header, then the program prefix, then each item's arguments.
enum : std::uint32_t { kPoolTask = 1, kPoolStop = 2 };
enum : std::uint8_t { kPoolFnAddress = 0, kPoolFnName = 1, kPoolFnStateless = 2, kPoolFnObject = 3 };

template <class Fn>
struct pool_fn_ptr : std::false_type {};
template <class R, class... P>
struct pool_fn_ptr<R (*)(P...)> : std::true_type {
  using result = R;
  using params = std::tuple<std::decay_t<P>...>;
};
template <class R, class... P>
struct pool_fn_ptr<R (*)(P...) noexcept> : pool_fn_ptr<R (*)(P...)> {};

template <class F, bool Pointer, class... A>
struct program_params {
  using type = std::tuple<A...>;
};
template <class F, class... A>
struct program_params<F, true, A...> {
  using type = typename pool_fn_ptr<F>::params;
};

// A result that cannot be encoded fails its task with CPython's MaybeEncodingError.
template <class V>
void encode_result(Encoder& out, const V& value) {
  try {
    out(value);
  } catch (const std::exception& e) {
    throw MaybeEncodingError("Error sending result: '" + type_name<V>() + "'. Reason: '" + e.what() + "'");
  }
}

// Worker side: runs `count` calls, encoding each result.
template <class R, class... P>
void pool_call_pointer(const PoolFunction& fn, Decoder& in, std::uint32_t count, Encoder& out) {
  auto f = reinterpret_cast<R (*)(P...)>(fn.function);
  for (std::uint32_t i = 0; i < count; ++i) {
    std::tuple<std::decay_t<P>...> args;
    in(args);
    if constexpr (std::is_void_v<R>) {
      std::apply([f](auto&... a) { f(static_cast<P&&>(a)...); }, args);
    } else {
      encode_result(out, std::apply([f](auto&... a) -> R { return f(static_cast<P&&>(a)...); }, args));
    }
  }
}
template <class F, class... A>
void pool_call_object(const PoolFunction& fn, Decoder& in, std::uint32_t count, Encoder& out) {
  F f{};
  if constexpr (!std::is_empty_v<F>) {
    Decoder od(fn.object);
    od(f);
  } else {
    (void)fn;
  }
  using R = std::invoke_result_t<F&, A&&...>;
  for (std::uint32_t i = 0; i < count; ++i) {
    std::tuple<A...> args;
    in(args);
    if constexpr (std::is_void_v<R>) {
      std::apply([&f](A&... a) { std::invoke(f, std::move(a)...); }, args);
    } else {
      encode_result(out, std::apply([&f](A&... a) -> R { return std::invoke(f, std::move(a)...); }, args));
    }
  }
}

// A callable prepared for a process pool: the prefix every task record of it carries, and how its
// items' arguments are encoded. A = the decayed argument types of one call as given.
template <class F, class... A>
class ProcessProgram {
 public:
  static constexpr bool is_pointer = pool_fn_ptr<F>::value;
  using Params = typename program_params<F, is_pointer, A...>::type;
  using Result = std::decay_t<std::invoke_result_t<F&, A&&...>>;

  static_assert(tuple_transportable<Params>,
                "mp::Pool: an argument type of the task cannot be serialized by mp::codec (use ThreadPool for "
                "arbitrary types)");
  static_assert(std::is_default_constructible_v<Params>,
                "mp::Pool: every argument type of the task must be default-constructible");
  static_assert(std::is_void_v<Result> || transportable_v<Result>,
                "mp::Pool: the task's result type cannot be serialized by mp::codec, so it cannot come back");
  static_assert(std::is_void_v<Result> || std::is_default_constructible_v<Result>,
                "mp::Pool: the task's result type must be default-constructible");

  explicit ProcessProgram(const F& f) {
    Encoder enc;
    if constexpr (is_pointer) {
      enc(locate_code(code_address(trampoline_for(f))));
      if (const TaskRegistration* reg = find_task_by_function(code_address(f))) {
        enc(std::uint8_t{kPoolFnName});
        enc(reg->name);
      } else {
        enc(std::uint8_t{kPoolFnAddress});
        enc(locate_code(code_address(f)));
      }
    } else {
      enc(locate_code(code_address(&pool_call_object<F, A...>)));
      if constexpr (transportable_v<F> && std::is_default_constructible_v<F> && !std::is_empty_v<F>) {
        if (find_task_by_type(typeid(F)) == nullptr) unsupported();
        enc(std::uint8_t{kPoolFnObject});
        Encoder obj;
        obj(f);
        enc(obj.bytes());
      } else if constexpr (std::is_empty_v<F> && std::is_default_constructible_v<F>) {
        enc(std::uint8_t{kPoolFnStateless});
      } else {
        unsupported();
      }
    }
    prefix = std::move(enc.bytes());
  }

  // Encodes one call's arguments, converted to the function's parameter types.
  template <class Tuple>
  void encode(Encoder& enc, const Tuple& args) const {
    encode_each(enc, args, std::make_index_sequence<std::tuple_size_v<Params>>{});
  }

  std::vector<std::byte> prefix;

 private:
  template <class R, class... P>
  static PoolTrampoline trampoline_for(R (*)(P...)) {
    return &pool_call_pointer<R, P...>;
  }
  template <class R, class... P>
  static PoolTrampoline trampoline_for(R (*)(P...) noexcept) {
    return &pool_call_pointer<R, P...>;
  }
  template <class Tuple, std::size_t... I>
  static void encode_each(Encoder& enc, const Tuple& args, std::index_sequence<I...>) {
    static_assert(std::tuple_size_v<std::decay_t<Tuple>> == sizeof...(I), "mp::Pool: wrong number of arguments");
    (encode_one<std::tuple_element_t<I, Params>>(enc, std::get<I>(args)), ...);
  }
  template <class P, class V>
  static void encode_one(Encoder& enc, const V& v) {
    if constexpr (std::is_same_v<std::decay_t<V>, P>) {
      enc(v);
    } else {
      enc(static_cast<P>(v));
    }
  }
  [[noreturn]] static void unsupported() {
    throw ValueError("mp::Pool: the task (" + type_name<F>() +
                     ") is not a plain function, a captureless lambda, or a type registered with MP_TASK_TYPE, "
                     "so a worker process cannot find it");
  }
};

// The element type of an input range (std::ranges' traits and views are avoided: clang 14 cannot
// compile them over libstdc++ 12).
template <class Range>
using range_elem_t = std::decay_t<decltype(*std::begin(std::declval<Range&>()))>;

// An imap input held for lazy reading: a reference to an lvalue range, the range itself otherwise.
template <class Range>
struct HeldInput {
  using Stored = std::conditional_t<std::is_lvalue_reference_v<Range>, std::remove_reference_t<Range>*,
                                    std::decay_t<Range>>;
  Stored stored;
  auto& get() {
    if constexpr (std::is_pointer_v<Stored>) {
      return *stored;
    } else {
      return stored;
    }
  }
  static Stored hold(Range&& r) {
    if constexpr (std::is_pointer_v<Stored>) {
      return &r;
    } else {
      return Stored(std::move(r));
    }
  }
};

// The element of starmap's input as an argument tuple.
template <class T>
concept tuple_like = requires { std::tuple_size<std::remove_cvref_t<T>>::value; };

}  // namespace detail

namespace detail {
// An input iterator over an object's next() (an optional, empty at the end): what range-for needs.
template <class Owner, class T>
class NextIterator {
 public:
  using value_type = T;
  using difference_type = std::ptrdiff_t;
  NextIterator() = default;
  explicit NextIterator(Owner* owner) : owner_(owner) { advance(); }
  T& operator*() const { return *current_; }
  T* operator->() const { return &*current_; }
  NextIterator& operator++() {
    advance();
    return *this;
  }
  void operator++(int) { advance(); }
  friend bool operator==(const NextIterator& it, std::default_sentinel_t) { return !it.current_; }

 private:
  void advance() {
    current_.reset();
    if (owner_) current_ = owner_->next();
  }
  Owner* owner_ = nullptr;
  mutable std::optional<T> current_;
};
}  // namespace detail

// The result of apply_async (T = the task's result) or map_async (T = std::vector of them).
template <class T>
class AsyncResult {
 public:
  AsyncResult() = default;
  explicit AsyncResult(std::shared_ptr<detail::AsyncState<T>> s) : s_(std::move(s)) {}
  // Waits for the result (mp::TimeoutError after `timeout`); re-throws the task's exception.
  T get(Timeout timeout = {}) const {
    if (!state().wait(timeout)) throw TimeoutError();
    if constexpr (std::is_void_v<T>) {
      (void)state().value();
    } else {
      return state().value();
    }
  }
  void wait(Timeout timeout = {}) const { (void)state().wait(timeout); }
  bool ready() const { return state().ready(); }
  // Whether the task completed without an exception; mp::ValueError before it is ready.
  bool successful() const { return state().successful(); }

 private:
  template <class>
  friend class BasicPool;
  detail::AsyncState<T>& state() const {
    if (!s_) throw ValueError("AsyncResult: no result (default-constructed)");
    return *s_;
  }
  std::shared_ptr<detail::AsyncState<T>> s_;
};

// imap / imap_unordered: results as they become ready. Iterate it (range-for), or call next().
// Dropping it stops feeding the pool what is left of the input.
template <class R>
class IMapIterator {
 public:
  IMapIterator() = default;
  IMapIterator(std::shared_ptr<detail::IMapState<R>> s, std::shared_ptr<detail::PoolCoreBase> core)
      : s_(std::move(s)), core_(std::move(core)) {}
  IMapIterator(IMapIterator&&) noexcept = default;
  IMapIterator& operator=(IMapIterator&& o) noexcept {
    if (this != &o) {
      release();
      s_ = std::move(o.s_);
      core_ = std::move(o.core_);
    }
    return *this;
  }
  ~IMapIterator() { release(); }

  // The next result; nullopt when there are no more; mp::TimeoutError; a task's exception.
  std::optional<R> next(Timeout timeout = {}) {
    if (!s_) return std::nullopt;
    return s_->next(timeout);
  }

  using iterator = detail::NextIterator<IMapIterator, R>;
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const { return {}; }

 private:
  void release() {
    if (s_ && core_) core_->job_done(s_->id);
    s_.reset();
    core_.reset();
  }
  std::shared_ptr<detail::IMapState<R>> s_;
  std::shared_ptr<detail::PoolCoreBase> core_;
};

// CPython's default map chunksize: ceil(n / (4 * workers)).
inline std::size_t default_chunksize(std::size_t n, int workers) {
  if (n == 0) return 0;
  std::size_t w = static_cast<std::size_t>(std::max(1, workers)) * 4;
  return (n + w - 1) / w;
}

namespace detail {

template <class Fn, class Args>
struct program_of;
template <class Fn, class... A>
struct program_of<Fn, std::tuple<A...>> {
  using type = ProcessProgram<Fn, A...>;
};

// How Pool hands chunks of calls to its workers: encoded task records on the task queue.
struct ProcessSubmitter {
  std::weak_ptr<ProcessPoolCore> core;

  template <class R, class Args, class F>
  static auto prepare(F&& f) {
    using Program = typename program_of<std::decay_t<F>, Args>::type;
    return std::make_shared<const Program>(f);
  }
  template <class R, class Job, class Program, class Args, class Deliver>
  void submit_chunk(const std::shared_ptr<Job>& job, const Program& program, std::size_t first,
                    std::span<const Args> items, const Deliver&) const {
    auto c = core.lock();
    if (!c) throw ValueError("Pool not running");
    with_scratch_encoder([&](Encoder& enc) {
      enc(std::uint32_t{kPoolTask});
      enc(static_cast<std::uint64_t>(job->id));
      enc(static_cast<std::uint64_t>(first));
      enc(static_cast<std::uint32_t>(items.size()));
      enc(static_cast<std::uint32_t>(program->prefix.size()));
      enc.write(program->prefix.data(), program->prefix.size());
      for (const Args& a : items) program->encode(enc, a);
      if (!enc.handles().empty()) {
        throw ValueError("mp::Pool: task arguments cannot carry OS handles (Connections, Locks, ...); give them "
                         "to the workers through the initializer");
      }
      process_pool_submit(*c, enc.bytes());
    });
  }
};

// How ThreadPool hands chunks of calls to its threads: closures.
struct ThreadSubmitter {
  std::weak_ptr<ThreadPoolCore> core;

  template <class R, class Args, class F>
  static auto prepare(F&& f) {
    return std::make_shared<std::decay_t<F>>(std::forward<F>(f));
  }
  template <class R, class Job, class Program, class Args, class Deliver>
  void submit_chunk(const std::shared_ptr<Job>& job, const Program& program, std::size_t first,
                    std::span<const Args> items, const Deliver& deliver) const {
    auto c = core.lock();
    if (!c) throw ValueError("Pool not running");
    std::vector<Args> chunk(items.begin(), items.end());
    std::weak_ptr<PoolCoreBase> weak_core = std::shared_ptr<PoolCoreBase>(c, &as_base(*c));
    thread_pool_submit(*c, [job, program, first, chunk = std::move(chunk), deliver, weak_core]() mutable {
      bool done = false;
      try {
        std::vector<stored_t<R>> out;
        out.reserve(chunk.size());
        for (Args& a : chunk) {
          if constexpr (std::is_void_v<R>) {
            std::apply(*program, std::move(a));
            out.emplace_back();
          } else {
            out.push_back(std::apply(*program, std::move(a)));
          }
        }
        done = deliver(first, std::move(out));
      } catch (...) {
        done = job->deliver_error(first, chunk.size(), std::current_exception());
      }
      if (done) {
        if (auto b = weak_core.lock()) b->job_done(job->id);
      }
    });
  }
};

}  // namespace detail

// The public surface of Pool and ThreadPool (Derived supplies its core and its submitter).
template <class Derived>
class BasicPool {
 public:
  template <class F, class... A>
    requires(!std::is_same_v<std::decay_t<F>, AsyncOptions>)
  auto apply(F&& f, A&&... args) {
    return apply_async(std::forward<F>(f), std::forward<A>(args)...).get();
  }

  template <class F, class... A>
    requires(!std::is_same_v<std::decay_t<F>, AsyncOptions>)
  auto apply_async(F&& f, A&&... args) {
    return apply_async(AsyncOptions{}, std::forward<F>(f), std::forward<A>(args)...);
  }

  template <class F, class... A>
  auto apply_async(const AsyncOptions& options, F&& f, A&&... args) {
    using Fn = std::decay_t<F>;
    using Args = std::tuple<std::decay_t<A>...>;
    using R = std::decay_t<std::invoke_result_t<Fn&, std::decay_t<A>&&...>>;
    auto state = std::make_shared<detail::ApplyState<R>>();
    if constexpr (std::is_void_v<R>) {
      if (options.callback) {
        state->set_callbacks([cb = options.callback.bind_void()](const std::monostate&) { cb(); },
                             options.error_callback);
      } else {
        state->set_callbacks(nullptr, options.error_callback);
      }
    } else {
      state->set_callbacks(options.callback ? options.callback.template bind<R>() : nullptr, options.error_callback);
    }
    Args args_tuple(std::forward<A>(args)...);
    auto sub = derived().submitter();
    auto program = sub.template prepare<R, Args>(Fn(std::forward<F>(f)));
    base().add_job(state);
    try {
      sub.template submit_chunk<R>(state, program, 0, std::span<const Args>(&args_tuple, 1),
                                   [state](std::size_t, std::vector<detail::stored_t<R>>&& v) {
                                     return state->deliver_value(std::move(v.front()));
                                   });
    } catch (...) {
      base().job_done(state->id);
      throw;
    }
    return AsyncResult<R>(state);
  }

  template <class F, class Range>
  auto map(F&& f, Range&& input, std::optional<std::size_t> chunksize = {}) {
    auto r = map_async(std::forward<F>(f), std::forward<Range>(input), chunksize);
    return take(r);
  }
  template <class F, class Range>
  auto map_async(F&& f, Range&& input, std::optional<std::size_t> chunksize = {}, const AsyncOptions& options = {}) {
    return map_impl<false>(std::forward<F>(f), std::forward<Range>(input), chunksize, options);
  }
  template <class F, class Range>
  auto starmap(F&& f, Range&& input, std::optional<std::size_t> chunksize = {}) {
    auto r = starmap_async(std::forward<F>(f), std::forward<Range>(input), chunksize);
    return take(r);
  }
  template <class F, class Range>
  auto starmap_async(F&& f, Range&& input, std::optional<std::size_t> chunksize = {},
                     const AsyncOptions& options = {}) {
    return map_impl<true>(std::forward<F>(f), std::forward<Range>(input), chunksize, options);
  }

  template <class F, class Range>
  auto imap(F&& f, Range&& input, std::size_t chunksize = 1) {
    return imap_impl(std::forward<F>(f), std::forward<Range>(input), chunksize, true);
  }
  template <class F, class Range>
  auto imap_unordered(F&& f, Range&& input, std::size_t chunksize = 1) {
    return imap_impl(std::forward<F>(f), std::forward<Range>(input), chunksize, false);
  }

  // No more work; the workers end once what was submitted is done (what is left of an imap's
  // input is submitted now).
  void close() { base().close(); }
  // Stops the workers now; results not yet in fail with mp::ProcessError.
  void terminate() { base().terminate(); }
  // Waits for the workers to end; only after close() or terminate() (else mp::ValueError).
  void join() { base().join(); }
  int processes() const { return base().processes(); }

 protected:
  BasicPool() = default;
  ~BasicPool() = default;

 private:
  Derived& derived() { return static_cast<Derived&>(*this); }
  const Derived& derived() const { return static_cast<const Derived&>(*this); }
  detail::PoolCoreBase& base() const { return derived().base(); }

  template <class T>
  static T take(AsyncResult<T>& r) {
    r.wait();
    return r.state().take();
  }

  template <bool Star, class Elem>
  static auto as_args(const Elem& e) {
    if constexpr (Star) {
      static_assert(detail::tuple_like<Elem>, "starmap: each input element must be a tuple (or pair/array) of arguments");
      return std::apply([](const auto&... v) { return std::tuple<std::decay_t<decltype(v)>...>(v...); }, e);
    } else {
      return std::tuple<Elem>(e);
    }
  }
  template <bool Star, class Elem>
  using args_of = decltype(as_args<Star>(std::declval<const Elem&>()));

  template <class Fn, class Args>
  struct result_of;
  template <class Fn, class... A>
  struct result_of<Fn, std::tuple<A...>> {
    using type = std::decay_t<std::invoke_result_t<Fn&, A&&...>>;
  };

  template <bool Star, class F, class Range>
  auto map_impl(F&& f, Range&& input, std::optional<std::size_t> chunksize, const AsyncOptions& options) {
    using Fn = std::decay_t<F>;
    using Elem = detail::range_elem_t<Range>;
    using Args = args_of<Star, Elem>;
    using R = typename result_of<Fn, Args>::type;
    static_assert(!std::is_void_v<R>, "map/starmap: the function must return a value (use apply_async for void)");
    if (chunksize && *chunksize == 0) throw ValueError("Chunksize must be 1+, not 0");
    auto sub = derived().submitter();
    auto program = sub.template prepare<R, Args>(Fn(std::forward<F>(f)));
    std::vector<Args> items;
    if constexpr (requires { std::size(input); }) items.reserve(static_cast<std::size_t>(std::size(input)));
    for (auto&& e : input) items.push_back(as_args<Star>(e));
    std::size_t cs = chunksize ? *chunksize : default_chunksize(items.size(), processes());
    auto state = std::make_shared<detail::MapState<R>>(items.size(), cs);
    state->set_callbacks(options.callback ? options.callback.template bind<std::vector<R>>() : nullptr,
                         options.error_callback);
    base().add_job(state);
    if (items.empty()) {
      state->complete_empty();
      base().job_done(state->id);
      return AsyncResult<std::vector<R>>(state);
    }
    auto deliver = [state](std::size_t first, std::vector<R>&& v) { return state->deliver_values(first, std::move(v)); };
    try {
      const std::span<const Args> all(items);
      for (std::size_t first = 0; first < items.size(); first += cs) {
        sub.template submit_chunk<R>(state, program, first, all.subspan(first, std::min(cs, items.size() - first)),
                                     deliver);
      }
    } catch (...) {
      base().job_done(state->id);
      throw;
    }
    return AsyncResult<std::vector<R>>(state);
  }

  template <class F, class Range>
  auto imap_impl(F&& f, Range&& input, std::size_t chunksize, bool ordered) {
    using Fn = std::decay_t<F>;
    using Elem = detail::range_elem_t<Range>;
    using Args = args_of<false, Elem>;
    using R = typename result_of<Fn, Args>::type;
    using Held = detail::HeldInput<Range>;
    using Iter = decltype(std::begin(std::declval<Held&>().get()));
    static_assert(!std::is_void_v<R>, "imap: the function must return a value");
    if (chunksize == 0) throw ValueError("Chunksize must be 1+, not 0");
    auto sub = derived().submitter();
    auto program = sub.template prepare<R, Args>(Fn(std::forward<F>(f)));
    const std::size_t window = std::max<std::size_t>(64, 8 * static_cast<std::size_t>(processes()));
    auto state = std::make_shared<detail::IMapState<R>>(ordered, chunksize, window);
    struct Input {
      Held held;
      std::optional<Iter> it;
      std::size_t next_index = 0;
    };
    auto in = std::make_shared<Input>(Input{Held{Held::hold(std::forward<Range>(input))}, std::nullopt, 0});
    std::weak_ptr<detail::IMapState<R>> weak = state;
    state->set_feeder(
        [sub, in, program, weak, chunksize](std::size_t max, std::exception_ptr& error) -> std::size_t {
          auto st = weak.lock();
          if (!st) return 0;
          std::size_t n = 0;
          std::vector<Args> chunk;
          auto deliver = [weak](std::size_t first, std::vector<R>&& v) {
            auto s = weak.lock();
            return s ? s->deliver_values(first, std::move(v)) : false;
          };
          auto submit = [&] {
            if (chunk.empty()) return;
            sub.template submit_chunk<R>(st, program, in->next_index, std::span<const Args>(chunk), deliver);
            in->next_index += chunk.size();
            n += chunk.size();
            chunk.clear();
          };
          try {
            auto& range = in->held.get();
            if (!in->it) in->it.emplace(std::begin(range));
            auto& it = *in->it;
            while (n < max && it != std::end(range)) {
              while (chunk.size() < chunksize && it != std::end(range)) {
                chunk.push_back(as_args<false>(*it));
                ++it;
              }
              submit();
            }
          } catch (...) {
            error = std::current_exception();
            try {
              submit();  // what was read before the failure still runs
            } catch (...) {
            }
          }
          return n;
        });
    base().add_job(state);
    base().add_lazy(state->id, [weak] {
      if (auto st = weak.lock()) st->feed_all();
    });
    return IMapIterator<R>(state, base().shared_from_this());
  }
};

// multiprocessing.Pool.
class Pool : public BasicPool<Pool> {
 public:
  explicit Pool(PoolOptions options = {});
  explicit Pool(int processes) : Pool(PoolOptions{.processes = processes}) {}
  Pool(Pool&&) noexcept = default;
  Pool& operator=(Pool&&) noexcept;
  ~Pool();

 private:
  friend class BasicPool<Pool>;
  detail::PoolCoreBase& base() const;
  detail::ProcessSubmitter submitter() const { return {core_}; }
  std::shared_ptr<detail::ProcessPoolCore> core_;
};

// multiprocessing.pool.ThreadPool: the same surface over threads of this process.
class ThreadPool : public BasicPool<ThreadPool> {
 public:
  explicit ThreadPool(PoolOptions options = {});
  explicit ThreadPool(int processes) : ThreadPool(PoolOptions{.processes = processes}) {}
  ThreadPool(ThreadPool&&) noexcept = default;
  ThreadPool& operator=(ThreadPool&&) noexcept;
  ~ThreadPool();

 private:
  friend class BasicPool<ThreadPool>;
  detail::PoolCoreBase& base() const;
  detail::ThreadSubmitter submitter() const { return {core_}; }
  std::shared_ptr<detail::ThreadPoolCore> core_;
};

}  // namespace mp
