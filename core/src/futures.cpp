// ProcessPoolExecutor's futures and scheduling (see <mp/futures.hpp>); the workers are
// mp::Pool's (core/src/pool.cpp), created in "break on a worker's death" mode.
#include <mp/futures.hpp>

#include "platform/process.hpp"

#include <algorithm>

namespace mp::detail {

// ---- futures ------------------------------------------------------------------------------------------
FutureStateBase::~FutureStateBase() = default;

bool FutureStateBase::cancel() {
  std::unique_lock lk(m_);
  if (status_ == Status::running || status_ == Status::finished) return false;
  if (status_ == Status::cancelled) return true;
  status_ = Status::cancelled;
  notify_done(lk, false);
  return true;
}

bool FutureStateBase::cancelled() const {
  std::lock_guard lk(m_);
  return status_ == Status::cancelled;
}

bool FutureStateBase::running() const {
  std::lock_guard lk(m_);
  return status_ == Status::running;
}

bool FutureStateBase::done() const {
  std::lock_guard lk(m_);
  return status_ == Status::cancelled || status_ == Status::finished;
}

bool FutureStateBase::wait(Timeout timeout) const {
  std::unique_lock lk(m_);
  auto is_done = [&] { return status_ == Status::cancelled || status_ == Status::finished; };
  if (!timeout) {
    cv_.wait(lk, is_done);
    return true;
  }
  return cv_.wait_for(lk, *timeout, is_done);
}

std::exception_ptr FutureStateBase::error() const {
  std::lock_guard lk(m_);
  if (status_ == Status::cancelled) throw CancelledError();
  return error_;
}

bool FutureStateBase::set_running() {
  std::lock_guard lk(m_);
  if (status_ != Status::pending) return false;
  status_ = Status::running;
  return true;
}

void FutureStateBase::add_waiter(const std::shared_ptr<Waiter>& w) {
  std::unique_lock lk(m_);
  waiters_.push_back(w);
  if (status_ == Status::cancelled || status_ == Status::finished) {
    lk.unlock();
    w->notify();
  }
}

void FutureStateBase::remove_waiter(const Waiter* w) {
  std::lock_guard lk(m_);
  std::erase_if(waiters_, [w](const std::shared_ptr<Waiter>& x) { return x.get() == w; });
}

void FutureStateBase::add_done_callback(std::function<void()> cb) {
  std::unique_lock lk(m_);
  if (status_ == Status::cancelled || status_ == Status::finished) {
    lk.unlock();
    try {
      cb();
    } catch (...) {
      report_callback_error("future done callback");
    }
    return;
  }
  callbacks_.push_back(std::move(cb));
}

void FutureStateBase::set_on_complete(std::function<void()> hook) {
  std::lock_guard lk(m_);
  on_complete_ = std::move(hook);
}

bool FutureStateBase::deliver_error(std::size_t, std::size_t, std::exception_ptr error) {
  std::unique_lock lk(m_);
  if (status_ == Status::finished || status_ == Status::cancelled) return true;
  error_ = std::move(error);
  finish(lk);
  return true;
}

void FutureStateBase::finish(std::unique_lock<std::mutex>& lk) {
  status_ = Status::finished;
  notify_done(lk, true);
}

void FutureStateBase::notify_done(std::unique_lock<std::mutex>& lk, bool completed) {
  auto waiters = waiters_;
  auto callbacks = std::move(callbacks_);
  callbacks_.clear();
  std::function<void()> hook = completed ? std::move(on_complete_) : nullptr;
  on_complete_ = nullptr;
  lk.unlock();
  cv_.notify_all();
  for (auto& w : waiters) w->notify();
  for (auto& cb : callbacks) {
    try {
      cb();
    } catch (...) {
      report_callback_error("future done callback");
    }
  }
  if (hook) hook();
}

// ---- the executor -------------------------------------------------------------------------------------
std::shared_ptr<ExecutorCore> ExecutorCore::make(const ExecutorOptions& o) {
  if (o.max_workers && *o.max_workers <= 0) throw ValueError("max_workers must be greater than 0");
  if (o.max_tasks_per_child && *o.max_tasks_per_child <= 0) throw ValueError("max_tasks_per_child must be >= 1");
  std::shared_ptr<ExecutorCore> core(new ExecutorCore());
  core->max_workers_ = o.max_workers ? *o.max_workers : std::max(1, process_cpu_count());
  PoolOptions po{.processes = core->max_workers_,
                 .initializer = o.initializer,
                 .maxtasksperchild = o.max_tasks_per_child.value_or(0),
                 .context = o.mp_context};
  std::weak_ptr<ExecutorCore> weak = core;
  core->pool_ = make_process_pool(po, [weak](const std::string& why) {
    if (auto c = weak.lock()) c->on_broken(why);
  });
  return core;
}

ExecutorCore::~ExecutorCore() {
  if (pool_) as_base(*pool_).terminate_and_join();
}

void ExecutorCore::submit(const std::shared_ptr<FutureStateBase>& future, std::function<void()> dispatch) {
  {
    std::lock_guard lk(m_);
    if (!broken_.empty()) throw BrokenProcessPool(broken_);
    if (shutdown_) throw RuntimeError("cannot schedule new futures after shutdown");
    pending_.push_back(Item{future, std::move(dispatch)});
  }
  pump();
}

void ExecutorCore::pump() {
  for (;;) {
    Item it;
    {
      std::lock_guard lk(m_);
      if (!broken_.empty() || pending_.empty() || in_flight_ >= max_workers_ + 1) break;
      it = std::move(pending_.front());
      pending_.pop_front();
      if (!it.future->set_running()) continue;  // cancelled while it waited
      ++in_flight_;
    }
    std::weak_ptr<ExecutorCore> weak = weak_from_this();
    it.future->set_on_complete([weak] {
      if (auto c = weak.lock()) c->on_done();
    });
    try {
      it.dispatch();
    } catch (...) {
      std::exception_ptr error = std::current_exception();
      {
        std::lock_guard lk(m_);
        if (!broken_.empty()) error = std::make_exception_ptr(BrokenProcessPool(broken_));
      }
      it.future->deliver_error(0, 0, error);
    }
  }
  bool close = false;
  {
    std::lock_guard lk(m_);
    if (shutdown_ && pending_.empty() && !pool_closed_ && broken_.empty()) {
      pool_closed_ = true;
      close = true;
    }
  }
  if (close) as_base(*pool_).close();
  cv_.notify_all();
}

void ExecutorCore::on_done() {
  {
    std::lock_guard lk(m_);
    --in_flight_;
  }
  pump();
}

void ExecutorCore::on_broken(const std::string& why) {
  std::deque<Item> pending;
  {
    std::lock_guard lk(m_);
    if (!broken_.empty()) return;
    broken_ = why;
    pending.swap(pending_);
  }
  auto error = std::make_exception_ptr(BrokenProcessPool(why));
  for (auto& it : pending) it.future->deliver_error(0, 0, error);
  as_base(*pool_).terminate(error);
  cv_.notify_all();
}

void ExecutorCore::shutdown(bool wait, bool cancel_futures) {
  std::deque<Item> cancelled;
  {
    std::lock_guard lk(m_);
    shutdown_ = true;
    if (cancel_futures) cancelled.swap(pending_);
  }
  for (auto& it : cancelled) it.future->cancel();
  pump();
  if (!wait) return;
  {
    std::unique_lock lk(m_);
    cv_.wait(lk, [&] { return (pending_.empty() && pool_closed_) || !broken_.empty(); });
    if (joined_) return;
    joined_ = true;
  }
  as_base(*pool_).join();
}

}  // namespace mp::detail
