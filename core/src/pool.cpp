// Pool and ThreadPool (see <mp/pool.hpp>), and the exception registry that lets a task's
// exception cross processes with its type.
//
// The process pool: tasks travel as encoded records on a Queue (the parent writes, workers read);
// results come back on a SimpleQueue (workers write straight into the ring, never through a
// feeder thread, so a result is in the ring before the worker can say it finished). Each worker
// owns a slot of four words in shared memory: before it runs a task it records (job, first item,
// count) there, and clears it after sending the result. A monitor thread in the parent waits on
// the workers' sentinels; when one ends, it reads the slot, and if a task was in hand it writes a
// "lost" record into the result queue - after anything the worker wrote, so a result that made it
// wins - then starts a replacement. A worker killed while taking a task from the queue leaves the
// item in the ring (the queue's reader lock is an owner-death lock): the next worker takes it, and
// the chunk's first result is kept (a duplicate is ignored).
#include <mp/pool.hpp>

#include <mp/connection.hpp>
#include <mp/queues.hpp>
#include <mp/sharedctypes.hpp>

#include "platform/process.hpp"
#include "process_state.hpp"

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <typeindex>
#include <unordered_map>

namespace mp::detail {

// ---- exceptions across processes --------------------------------------------------------------------
namespace {

struct ExceptionRegistry {
  std::mutex mutex;
  std::unordered_map<std::string, ExceptionFactory> by_name;
};

template <class T>
std::exception_ptr make_with(const std::string& what) {
  return std::make_exception_ptr(T(what));
}

ExceptionRegistry& exception_registry() {
  static auto* r = [] {
    auto* reg = new ExceptionRegistry;
    auto add = [reg](const std::type_info& t, ExceptionFactory f) { reg->by_name[t.name()] = f; };
    add(typeid(std::runtime_error), &make_with<std::runtime_error>);
    add(typeid(std::logic_error), &make_with<std::logic_error>);
    add(typeid(std::invalid_argument), &make_with<std::invalid_argument>);
    add(typeid(std::out_of_range), &make_with<std::out_of_range>);
    add(typeid(std::domain_error), &make_with<std::domain_error>);
    add(typeid(std::length_error), &make_with<std::length_error>);
    add(typeid(std::range_error), &make_with<std::range_error>);
    add(typeid(std::overflow_error), &make_with<std::overflow_error>);
    add(typeid(std::underflow_error), &make_with<std::underflow_error>);
    add(typeid(std::exception), [](const std::string& w) { return std::make_exception_ptr(std::runtime_error(w)); });
    add(typeid(std::bad_alloc), [](const std::string&) { return std::make_exception_ptr(std::bad_alloc()); });
    add(typeid(ProcessError), &make_with<ProcessError>);
    add(typeid(AuthenticationError), &make_with<AuthenticationError>);
    add(typeid(TimeoutError), &make_with<TimeoutError>);
    add(typeid(BrokenProcessPool), &make_with<BrokenProcessPool>);
    add(typeid(MaybeEncodingError), &make_with<MaybeEncodingError>);
    add(typeid(ValueError), &make_with<ValueError>);
    add(typeid(IndexError), &make_with<IndexError>);
    add(typeid(AssertionError), &make_with<AssertionError>);
    add(typeid(EOFError), &make_with<EOFError>);
    add(typeid(DecodeError), &make_with<DecodeError>);
    add(typeid(BrokenBarrierError), &make_with<BrokenBarrierError>);
    add(typeid(CancelledError), &make_with<CancelledError>);
    add(typeid(RuntimeError), &make_with<RuntimeError>);
    add(typeid(Empty), [](const std::string&) { return std::make_exception_ptr(Empty()); });
    add(typeid(Full), [](const std::string&) { return std::make_exception_ptr(Full()); });
    return reg;
  }();
  return *r;
}

}  // namespace

void register_exception_type(const std::type_info& type, ExceptionFactory make) {
  auto& r = exception_registry();
  std::lock_guard g(r.mutex);
  r.by_name[type.name()] = make;
}

ExceptionInfo describe_exception(const std::exception_ptr& error) {
  ExceptionInfo info;
  try {
    std::rethrow_exception(error);
  } catch (const RemoteError& e) {
    info.type = "remote:" + e.type_name();  // keeps the original type's name across a second hop
    info.what = e.what();
  } catch (const std::exception& e) {
    info.type = typeid(e).name();
    info.what = e.what();
  } catch (const SystemExit& e) {
    info.type = "";
    info.what = "SystemExit(" + std::to_string(e.code) + ")";
  } catch (...) {
    info.type = "";
    info.what = "an exception that is not a std::exception";
  }
  return info;
}

std::exception_ptr rebuild_exception(const ExceptionInfo& info) {
  if (info.type.rfind("remote:", 0) == 0) {
    return std::make_exception_ptr(RemoteError(info.type.substr(7), info.what));
  }
  if (!info.type.empty()) {
    ExceptionFactory make = nullptr;
    {
      auto& r = exception_registry();
      std::lock_guard g(r.mutex);
      auto it = r.by_name.find(info.type);
      if (it != r.by_name.end()) make = it->second;
    }
    if (make) return make(info.what);
    return std::make_exception_ptr(RemoteError(demangle(info.type.c_str()), info.what));
  }
  return std::make_exception_ptr(RemoteError("unknown", info.what));
}

std::string type_label(const std::type_info& t) {
  if (t == typeid(void)) return "no argument";
  return demangle(t.name());
}

void report_callback_error(const char* which) noexcept {
  std::string what = "unknown exception";
  try {
    throw;
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  platform::write_stderr(std::string("mp: exception in a pool ") + which + ": " + what + "\n");
}

struct CondVar::Impl {
  std::condition_variable cv;
};
CondVar::CondVar() : impl_(std::make_unique<Impl>()) {}
CondVar::~CondVar() = default;
void CondVar::notify_all() noexcept { impl_->cv.notify_all(); }
void CondVar::wait(std::unique_lock<std::mutex>& lk) { impl_->cv.wait(lk); }
bool CondVar::wait_until(std::unique_lock<std::mutex>& lk, std::chrono::steady_clock::time_point deadline) {
  return impl_->cv.wait_until(lk, deadline) == std::cv_status::no_timeout;
}

// ---- the cache and the states, shared by both backends ---------------------------------------------
PoolCoreBase::~PoolCoreBase() = default;

void PoolCoreBase::add_job(const std::shared_ptr<JobBase>& job) {
  std::lock_guard lk(mutex_);
  if (state_ != State::run) throw ValueError("Pool not running");
  job->id = next_id_++;
  jobs_.emplace(job->id, job);
}

void PoolCoreBase::job_done(std::uint64_t id) {
  std::unique_lock lk(mutex_);
  jobs_.erase(id);
  lazy_.erase(id);
  maybe_idle_locked(lk);
}

void PoolCoreBase::add_lazy(std::uint64_t id, std::function<void()> feed_all) {
  std::lock_guard lk(mutex_);
  if (jobs_.count(id)) lazy_.emplace(id, std::move(feed_all));
}

std::shared_ptr<JobBase> PoolCoreBase::find_job(std::uint64_t id) {
  std::lock_guard lk(mutex_);
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

bool PoolCoreBase::running() const {
  std::lock_guard lk(mutex_);
  return state_ == State::run;
}

void PoolCoreBase::maybe_idle_locked(std::unique_lock<std::mutex>& lk) {
  if (state_ == State::close && jobs_.empty() && !idle_signalled_) {
    idle_signalled_ = true;
    lk.unlock();
    on_idle_after_close();
    lk.lock();
  }
}

void PoolCoreBase::close() {
  std::vector<std::function<void()>> feeds;
  {
    std::lock_guard lk(mutex_);
    if (state_ != State::run) return;
    state_ = State::close;
    for (auto& [id, f] : lazy_) feeds.push_back(f);
  }
  // What is left of each imap's input goes to the workers now, so that join() can finish.
  for (auto& f : feeds) f();
  std::unique_lock lk(mutex_);
  for (auto it = lazy_.begin(); it != lazy_.end();) {
    auto job = jobs_.find(it->first);
    if (job == jobs_.end() || job->second->finished()) {
      if (job != jobs_.end()) jobs_.erase(job);
      it = lazy_.erase(it);
    } else {
      ++it;
    }
  }
  maybe_idle_locked(lk);
}

void PoolCoreBase::abandon_all(const std::exception_ptr& error) {
  std::map<std::uint64_t, std::shared_ptr<JobBase>> jobs;
  {
    std::lock_guard lk(mutex_);
    jobs.swap(jobs_);
    lazy_.clear();
  }
  for (auto& [id, job] : jobs) job->abandon(error);
}

void PoolCoreBase::terminate() {
  terminate(std::make_exception_ptr(ProcessError("the pool was terminated before this task finished")));
}

void PoolCoreBase::terminate(const std::exception_ptr& reason) {
  {
    std::lock_guard lk(mutex_);
    if (state_ == State::terminate) return;
    state_ = State::terminate;
  }
  on_terminate();
  abandon_all(reason);
}

void PoolCoreBase::terminate_and_join() noexcept {
  try {
    terminate();
    join();
  } catch (const std::exception& e) {
    platform::write_stderr(std::string("mp: ending a pool: ") + e.what() + "\n");
  } catch (...) {
  }
}

void PoolCoreBase::join() {
  {
    std::lock_guard lk(mutex_);
    if (state_ == State::run) throw ValueError("Pool is still running: call close() or terminate() before join()");
  }
  on_join();
}

// ---- the process backend ------------------------------------------------------------------------------
namespace {

enum : std::uint32_t { kResultOk = 1, kResultError = 2, kResultLost = 3, kResultStop = 4 };
constexpr std::size_t kSlotWords = 4;  // busy, job, first, count

// The initializer as a worker argument: under fork the object itself; under spawn/forkserver its
// descriptor, whose handles join the worker's own (remapped to the outer message's side table).
struct InitializerArg {
  std::shared_ptr<TaskBase> task;  // fork: run it as is
  TaskDescriptor desc;             // spawn/forkserver
  std::vector<native_handle_t> handles;

  void save(Encoder& enc) const {
    TaskDescriptor d;
    if (task) {
      if (auto why = task->describe(d)) throw ValueError("the pool's initializer cannot be sent to a new process: " + *why);
    }
    enc(d);
    std::vector<std::uint32_t> idx;
    for (native_handle_t h : d.handles) idx.push_back(enc.add_handle(h));
    enc(idx);
  }
  void load(Decoder& dec) {
    dec(desc);
    std::vector<std::uint32_t> idx;
    dec(idx);
    for (std::uint32_t i : idx) {
      handles.push_back(dec.handle(i));
      (void)dec.shared_object<int>(i, [](native_handle_t) { return std::make_shared<int>(0); });  // claimed here
    }
  }
  void run() const {
    if (task) {
      task->call();
    } else if (desc.kind != TaskDescriptor::none) {
      Decoder d(desc.payload, handles);
      run_task(desc, d);
    }
  }
};

struct WorkerArgs {
  QueueCore tasks;
  QueueCore results;
  HeapBlock slots;
  std::int32_t slot = 0;
  std::int32_t maxtasks = 0;
  InitializerArg init;

  void save(Encoder& enc) const { enc(tasks, results, slots, slot, maxtasks, init); }
  void load(Decoder& dec) { dec(tasks, results, slots, slot, maxtasks, init); }
};

std::atomic<std::uint64_t>* slot_words(const HeapBlock& b, int slot) {
  return reinterpret_cast<std::atomic<std::uint64_t>*>(b.data()) + kSlotWords * static_cast<std::size_t>(slot);
}

struct Reader {
  const std::byte* p;
  const std::byte* end;
  template <class T>
  T get() {
    if (static_cast<std::size_t>(end - p) < sizeof(T)) throw DecodeError("mp::Pool: truncated record");
    T v;
    std::memcpy(&v, p, sizeof v);
    p += sizeof v;
    return v;
  }
  std::span<const std::byte> take(std::size_t n) {
    if (static_cast<std::size_t>(end - p) < n) throw DecodeError("mp::Pool: truncated record");
    std::span<const std::byte> s(p, n);
    p += n;
    return s;
  }
  std::span<const std::byte> rest() const { return {p, static_cast<std::size_t>(end - p)}; }
};

// The worker's cache of resolved programs (keyed by the prefix bytes).
struct ResolvedProgram {
  std::vector<std::byte> prefix;
  PoolTrampoline trampoline = nullptr;
  PoolFunction fn;
  std::vector<std::byte> object;
};

void resolve(ResolvedProgram& r, std::span<const std::byte> prefix) {
  r.prefix.assign(prefix.begin(), prefix.end());
  Decoder d(r.prefix);
  CodeRef tramp;
  d(tramp);
  r.trampoline = reinterpret_cast<PoolTrampoline>(resolve_code(tramp));
  std::uint8_t kind = 0;
  d(kind);
  r.fn = {};
  r.object.clear();
  switch (kind) {
    case kPoolFnAddress: {
      CodeRef fn;
      d(fn);
      r.fn.function = resolve_code(fn);
      break;
    }
    case kPoolFnName: {
      std::string name;
      d(name);
      const TaskRegistration* reg = find_task(name);
      if (reg == nullptr || reg->function == nullptr) {
        throw ProcessError("mp::Pool: no function named '" + name + "' is registered (MP_TASK) in the worker");
      }
      r.fn.function = const_cast<void*>(reg->function);
      break;
    }
    case kPoolFnStateless:
      break;
    case kPoolFnObject:
      d(r.object);
      r.fn.object = r.object;
      break;
    default:
      throw DecodeError("mp::Pool: unknown task kind");
  }
}

struct TaskSinkCtx {
  std::vector<std::byte>* task;
  std::atomic<std::uint64_t>* slot;
};

void pool_worker_main(WorkerArgs args) {
  args.init.run();
  std::atomic<std::uint64_t>* slot = slot_words(args.slots, args.slot);
  std::vector<std::byte> task;
  ResolvedProgram cache;
  Process* parent = parent_process();
  int completed = 0;
  while (args.maxtasks <= 0 || completed < args.maxtasks) {
    TaskSinkCtx ctx{&task, slot};
    try {
      args.tasks.get(
          [](void* c, std::span<const std::byte> bytes) {
            auto& x = *static_cast<TaskSinkCtx*>(c);
            x.task->assign(bytes.begin(), bytes.end());
            Reader r{bytes.data(), bytes.data() + bytes.size()};
            if (r.get<std::uint32_t>() != kPoolTask) return;
            // Record what this worker holds before the item leaves the queue.
            x.slot[1].store(r.get<std::uint64_t>(), std::memory_order_relaxed);
            x.slot[2].store(r.get<std::uint64_t>(), std::memory_order_relaxed);
            x.slot[3].store(r.get<std::uint32_t>(), std::memory_order_relaxed);
            x.slot[0].store(1, std::memory_order_release);
          },
          &ctx, true, Seconds(0.5));
    } catch (const Empty&) {
      if (parent != nullptr && !parent->is_alive()) return;  // orphaned: the pool is gone
      continue;
    }
    Reader r{task.data(), task.data() + task.size()};
    if (r.get<std::uint32_t>() != kPoolTask) break;  // stop
    const auto job = r.get<std::uint64_t>();
    const auto first = r.get<std::uint64_t>();
    const auto count = r.get<std::uint32_t>();
    const auto prefix_len = r.get<std::uint32_t>();
    auto prefix = r.take(prefix_len);

    with_scratch_encoder([&](Encoder& out) {
      auto header = [&](std::uint32_t kind) {
        out.bytes().clear();
        out(kind);
        out(job);
        out(first);
        out(count);
      };
      try {
        if (cache.trampoline == nullptr || prefix.size() != cache.prefix.size() ||
            std::memcmp(prefix.data(), cache.prefix.data(), prefix.size()) != 0) {
          cache.trampoline = nullptr;
          resolve(cache, prefix);
        }
        header(kResultOk);
        Decoder in(r.rest());
        cache.trampoline(cache.fn, in, count, out);
      } catch (const SystemExit&) {
        throw;
      } catch (...) {
        header(kResultError);
        out(describe_exception(std::current_exception()));
      }
      args.results.put(out.bytes(), true, {});
    });
    slot[0].store(0, std::memory_order_release);
    ++completed;
  }
}

}  // namespace

class ProcessPoolCore;

// The process pools alive in this process: terminated at exit, before the exit function ends the
// daemonic children (else a pool's monitor would see its workers die and replace them).
struct LivePools {
  std::mutex mutex;
  std::vector<std::weak_ptr<ProcessPoolCore>> pools;
  unsigned generation = 0;
};
LivePools& live_pools() {
  static auto* p = [] {
    auto* made = new LivePools;  // never destroyed: used at exit
    platform::register_atfork(nullptr, nullptr, [] { new (&live_pools().mutex) std::mutex; });
    return made;
  }();
  return *p;
}
void terminate_live_pools();

class ProcessPoolCore final : public PoolCoreBase {
 public:
  explicit ProcessPoolCore(const PoolOptions& o, std::function<void(const std::string&)> on_broken = nullptr)
      : on_broken_(std::move(on_broken)),
        ctx_(o.context ? o.context : &get_context()),
        init_(o.initializer),
        maxtasks_(o.maxtasksperchild),
        tasks_(QueueCore::Kind::queue, 0),
        results_(QueueCore::Kind::simple, 0) {
    if (o.processes && *o.processes < 1) throw ValueError("Number of processes must be at least 1");
    if (o.maxtasksperchild < 0) throw ValueError("maxtasksperchild must be a positive int or None");
    processes_ = o.processes ? *o.processes : std::max(1, process_cpu_count());
    slots_ = HeapBlock::allocate(kSlotWords * sizeof(std::uint64_t) * static_cast<std::size_t>(processes_), 64);
    auto [r, w] = Pipe(false);
    wake_r_ = std::move(r);
    wake_w_ = std::move(w);
    workers_.resize(static_cast<std::size_t>(processes_));
    try {
      for (int i = 0; i < processes_; ++i) start_worker(i);
    } catch (...) {
      for (auto& w2 : workers_) {
        if (w2.live) {
          w2.proc.kill();
          w2.proc.join();
        }
      }
      throw;
    }
  }

  void start_threads() {
    result_thread_ = std::thread([this] { result_loop(); });
    monitor_thread_ = std::thread([this] { monitor_loop(); });
  }

  ~ProcessPoolCore() override {
    if (result_thread_.joinable() || monitor_thread_.joinable()) terminate_and_join();
  }

  void submit(std::span<const std::byte> task) { tasks_.put(task, true, {}); }

 protected:
  void on_idle_after_close() override {
    if (stops_sent_.exchange(true)) return;
    std::uint32_t stop = kPoolStop;
    for (int i = 0; i < processes_; ++i) {
      tasks_.put(std::as_bytes(std::span(&stop, 1)), true, {});
    }
    wake_monitor();
  }

  void on_terminate() override {
    tasks_.cancel_join_thread();
    {
      std::lock_guard lk(workers_mutex_);
      terminating_ = true;
      for (auto& w : workers_) {
        if (w.live) {
          try {
            w.proc.terminate();
          } catch (...) {
          }
        }
      }
    }
    wake_monitor();
  }

  void on_join() override {
    std::lock_guard g(join_mutex_);
    if (monitor_thread_.joinable()) monitor_thread_.join();
    if (result_thread_.joinable()) result_thread_.join();
  }

 private:
  struct Worker {
    Process proc;
    bool live = false;
  };

  void wake_monitor() {
    try {
      wake_w_.send_bytes(std::as_bytes(std::span("w", 1)));
    } catch (...) {
    }
  }

  // Under workers_mutex_ (or before the threads start).
  void start_worker(int slot) {
    std::atomic<std::uint64_t>* s = slot_words(slots_, slot);
    for (std::size_t i = 0; i < kSlotWords; ++i) s[i].store(0, std::memory_order_relaxed);
    WorkerArgs args{tasks_, results_, slots_, slot, maxtasks_, InitializerArg{init_.task(), {}, {}}};
    Process p(ProcessOptions{.daemon = true, .context = ctx_}, &pool_worker_main, std::move(args));
    std::string name = p.name();
    if (auto at = name.find("Process"); at != std::string::npos) name.replace(at, 7, "PoolWorker");
    p.name(std::move(name));
    p.start();
    workers_[static_cast<std::size_t>(slot)] = Worker{std::move(p), true};
  }

  void result_loop() {
    struct Ctx {
      ProcessPoolCore* self;
      bool stop = false;
    } ctx{this};
    while (!ctx.stop) {
      try {
        results_.get(
            [](void* c, std::span<const std::byte> bytes) {
              auto& x = *static_cast<Ctx*>(c);
              Reader r{bytes.data(), bytes.data() + bytes.size()};
              const auto kind = r.get<std::uint32_t>();
              if (kind == kResultStop) {
                x.stop = true;
                return;
              }
              const auto job_id = r.get<std::uint64_t>();
              const auto first = static_cast<std::size_t>(r.get<std::uint64_t>());
              const auto count = static_cast<std::size_t>(r.get<std::uint32_t>());
              std::shared_ptr<JobBase> job = x.self->find_job(job_id);
              if (!job) return;  // finished, abandoned or terminated
              Decoder d(r.rest());
              bool done = false;
              if (kind == kResultOk) {
                try {
                  done = job->deliver_encoded(first, count, d);
                } catch (...) {
                  done = job->deliver_error(first, count, std::current_exception());
                }
              } else if (kind == kResultError) {
                ExceptionInfo info;
                d(info);
                done = job->deliver_error(first, count, rebuild_exception(info));
              } else if (kind == kResultLost) {
                std::string what;
                d(what);
                done = job->deliver_error(first, count, std::make_exception_ptr(ProcessError(what)));
              }
              if (done) x.self->job_done(job_id);
            },
            &ctx, true, {});
      } catch (const std::exception& e) {
        platform::write_stderr(std::string("mp: pool result handler: ") + e.what() + "\n");
      }
    }
  }

  void monitor_loop() {
    for (;;) {
      std::vector<Waitable> waits{Waitable(wake_r_)};
      {
        std::lock_guard lk(workers_mutex_);
        for (auto& w : workers_) {
          if (w.live) waits.emplace_back(w.proc.sentinel());
        }
        if ((terminating_ || stops_sent_) && waits.size() == 1) break;
      }
      std::vector<Waitable> ready;
      try {
        ready = connection::wait(waits);
      } catch (const std::exception& e) {
        platform::write_stderr(std::string("mp: pool monitor: ") + e.what() + "\n");
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      for (auto& r : ready) {
        if (r.connection() != nullptr) {
          try {
            while (wake_r_.poll()) (void)wake_r_.recv_bytes();
          } catch (...) {
          }
        }
      }
      reap();
    }
    std::uint32_t stop = kResultStop;
    try {
      results_.put(std::as_bytes(std::span(&stop, 1)), true, {});
    } catch (const std::exception& e) {
      platform::write_stderr(std::string("mp: pool monitor: ") + e.what() + "\n");
    }
  }

  // Joins the workers that ended; fails the task each held; replaces them while work remains.
  void reap() {
    std::vector<std::vector<std::byte>> lost;
    std::string broken;
    std::unique_lock lk(workers_mutex_);
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      Worker& w = workers_[i];
      if (!w.live || !w.proc.join(Seconds(0))) continue;
      w.live = false;
      const int code = w.proc.exitcode().value_or(0);
      std::atomic<std::uint64_t>* s = slot_words(slots_, static_cast<int>(i));
      const bool busy = s[0].load(std::memory_order_acquire) == 1;
      if (on_broken_ && !terminating_ && !stops_sent_ && (busy || code != 0 || maxtasks_ <= 0)) {
        // An executor's pool breaks when a worker ends other than by its task limit (CPython).
        if (broken.empty()) {
          broken = "A process in the process pool was terminated abruptly while the future was running or "
                   "pending (worker " + w.proc.name() + ", pid " + std::to_string(w.proc.pid().value_or(0)) +
                   ", exit code " + std::to_string(code) + ")";
        }
        try {
          w.proc.close();
        } catch (...) {
        }
        continue;
      }
      if (busy && !terminating_) {
        Encoder enc;
        enc(std::uint32_t{kResultLost});
        enc(s[1].load(std::memory_order_relaxed));
        enc(s[2].load(std::memory_order_relaxed));
        enc(static_cast<std::uint32_t>(s[3].load(std::memory_order_relaxed)));
        enc(std::string("pool worker ") + w.proc.name() + " (pid " + std::to_string(w.proc.pid().value_or(0)) +
            ") died with exit code " + std::to_string(code) + " while running this task");
        lost.push_back(std::move(enc.bytes()));
      }
      try {
        w.proc.close();
      } catch (...) {
      }
      if (terminating_ || stops_sent_) continue;
      try {
        start_worker(static_cast<int>(i));
      } catch (const std::exception& e) {
        platform::write_stderr(std::string("mp: pool could not replace a worker: ") + e.what() + "\n");
      }
    }
    lk.unlock();
    // After the lock: the result thread may need it while this waits for room in the ring.
    for (auto& rec : lost) results_.put(rec, true, {});
    if (!broken.empty()) on_broken_(broken);
  }

  std::function<void(const std::string&)> on_broken_;
  Context* ctx_;
  Initializer init_;
  int maxtasks_;
  QueueCore tasks_;
  QueueCore results_;
  HeapBlock slots_;
  Connection wake_r_, wake_w_;
  std::mutex workers_mutex_;
  std::vector<Worker> workers_;
  std::atomic<bool> stops_sent_{false};
  bool terminating_ = false;
  std::mutex join_mutex_;
  std::thread result_thread_;
  std::thread monitor_thread_;
};

std::shared_ptr<ProcessPoolCore> make_process_pool(const PoolOptions& options,
                                                   std::function<void(const std::string&)> on_broken) {
  auto core = std::make_shared<ProcessPoolCore>(options, std::move(on_broken));
  core->start_threads();
  {
    LivePools& lp = live_pools();
    std::lock_guard g(lp.mutex);
    if (lp.generation != fork_generation()) {  // a forked child: the parent's pools are not its own
      lp.pools.clear();
      lp.generation = fork_generation();
    }
    std::erase_if(lp.pools, [](const std::weak_ptr<ProcessPoolCore>& w) { return w.expired(); });
    lp.pools.push_back(core);
  }
  register_early_exit_hook(&terminate_live_pools);
  return core;
}

void terminate_live_pools() {
  std::vector<std::shared_ptr<ProcessPoolCore>> pools;
  {
    LivePools& lp = live_pools();
    std::lock_guard g(lp.mutex);
    if (lp.generation != fork_generation()) return;
    for (auto& w : lp.pools) {
      if (auto p = w.lock()) pools.push_back(std::move(p));
    }
    lp.pools.clear();
  }
  for (auto& p : pools) as_base(*p).terminate_and_join();
}
void process_pool_submit(ProcessPoolCore& core, std::span<const std::byte> task) { core.submit(task); }
PoolCoreBase& as_base(ProcessPoolCore& core) { return core; }

// ---- the thread backend -------------------------------------------------------------------------------
class ThreadPoolCore final : public PoolCoreBase {
 public:
  explicit ThreadPoolCore(const PoolOptions& o) : init_(o.initializer) {
    if (o.processes && *o.processes < 1) throw ValueError("Number of processes must be at least 1");
    processes_ = o.processes ? *o.processes : std::max(1, process_cpu_count());
  }
  void start_threads() {
    for (int i = 0; i < processes_; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~ThreadPoolCore() override { terminate_and_join(); }
  void submit(std::function<void()> work) {
    {
      std::lock_guard lk(qm_);
      queue_.push_back(std::move(work));
    }
    qcv_.notify_one();
  }

 protected:
  void on_idle_after_close() override {
    {
      std::lock_guard lk(qm_);
      stop_ = true;
    }
    qcv_.notify_all();
  }
  void on_terminate() override {
    {
      std::lock_guard lk(qm_);
      stop_ = true;
      queue_.clear();
    }
    qcv_.notify_all();
  }
  void on_join() override {
    std::lock_guard g(join_mutex_);
    for (auto& t : threads_) {
      if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
    }
  }

 private:
  void loop() {
    try {
      init_();
    } catch (...) {
      report_callback_error("initializer");
    }
    for (;;) {
      std::function<void()> work;
      {
        std::unique_lock lk(qm_);
        qcv_.wait(lk, [&] { return !queue_.empty() || stop_; });
        if (queue_.empty()) return;
        work = std::move(queue_.front());
        queue_.pop_front();
      }
      work();
    }
  }
  Initializer init_;
  std::mutex qm_;
  std::condition_variable qcv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::mutex join_mutex_;
  std::vector<std::thread> threads_;
};

std::shared_ptr<ThreadPoolCore> make_thread_pool(const PoolOptions& options) {
  auto core = std::make_shared<ThreadPoolCore>(options);
  core->start_threads();
  return core;
}
void thread_pool_submit(ThreadPoolCore& core, std::function<void()> work) { core.submit(std::move(work)); }
PoolCoreBase& as_base(ThreadPoolCore& core) { return core; }

}  // namespace mp::detail

namespace mp {

Pool::Pool(PoolOptions options) : core_(detail::make_process_pool(options)) {}
Pool& Pool::operator=(Pool&& o) noexcept {
  if (this != &o) {
    if (core_) detail::as_base(*core_).terminate_and_join();
    core_ = std::move(o.core_);
  }
  return *this;
}
Pool::~Pool() {
  if (core_) detail::as_base(*core_).terminate_and_join();
}
detail::PoolCoreBase& Pool::base() const {
  if (!core_) throw ValueError("Pool: moved-from");
  return detail::as_base(*core_);
}

ThreadPool::ThreadPool(PoolOptions options) : core_(detail::make_thread_pool(options)) {}
ThreadPool& ThreadPool::operator=(ThreadPool&& o) noexcept {
  if (this != &o) {
    if (core_) detail::as_base(*core_).terminate_and_join();
    core_ = std::move(o.core_);
  }
  return *this;
}
ThreadPool::~ThreadPool() {
  if (core_) detail::as_base(*core_).terminate_and_join();
}
detail::PoolCoreBase& ThreadPool::base() const {
  if (!core_) throw ValueError("ThreadPool: moved-from");
  return detail::as_base(*core_);
}

}  // namespace mp
