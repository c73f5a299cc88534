// Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event: CPython's synchronize.py and the
// SemLock of its semaphore.c, over the named-semaphore seam.
#include <mp/context.hpp>
#include <mp/synchronize.hpp>

#include "platform/process.hpp"
#include "platform/semaphore.hpp"
#include "platform/shm.hpp"
#include "process_state.hpp"

#include <atomic>
#include <climits>
#include <thread>

namespace mp::detail {

// The name of an OS object (semaphore, shared memory) and who removes it. CPython's rule: under
// the fork context the creator removes it at once (children inherit the mapping, and the object
// cannot go to a spawn child); otherwise it lives until the creating process's last handle goes —
// never removed from a forked copy, nor by a process that only opened it.
class OwnedName {
 public:
  using Unlink = void (*)(const std::string&);
  OwnedName() = default;
  static OwnedName created(std::string name, Unlink unlink, Context* ctx) {
    OwnedName n;
    n.name_ = std::move(name);
    if (resolve_start_method(ctx) == "fork") {
      unlink(n.name_);
      n.fork_only_ = true;
    } else {
      n.unlink_ = unlink;
      n.generation_ = fork_generation();
    }
    return n;
  }
  static OwnedName opened(std::string name) {
    OwnedName n;
    n.name_ = std::move(name);
    return n;
  }
  OwnedName(OwnedName&& o) noexcept
      : name_(std::move(o.name_)), unlink_(std::exchange(o.unlink_, nullptr)), fork_only_(o.fork_only_),
        generation_(o.generation_) {}
  OwnedName& operator=(OwnedName&& o) noexcept {
    if (this != &o) {
      remove();
      name_ = std::move(o.name_);
      unlink_ = std::exchange(o.unlink_, nullptr);
      fork_only_ = o.fork_only_;
      generation_ = o.generation_;
    }
    return *this;
  }
  ~OwnedName() { remove(); }

  const std::string& str() const noexcept { return name_; }
  bool fork_only() const noexcept { return fork_only_; }

 private:
  void remove() noexcept {
    if (unlink_ != nullptr && generation_ == fork_generation()) {
      try {
        unlink_(name_);
      } catch (const std::exception&) {
        // Already gone (removed by hand or by the tracker): nothing to do.
      }
    }
    unlink_ = nullptr;
  }
  std::string name_;
  Unlink unlink_ = nullptr;  // set in the creating process, unless already removed
  bool fork_only_ = false;
  unsigned generation_ = 0;
};

struct SemLockState {
  platform::NamedSemaphore sem;
  OwnedName name;
  int kind = 0;
  int maxvalue = 1;
  // This process's view (CPython keeps it in the SemLock object): how many times it holds the
  // semaphore and which thread took it last. A forked child starts from zero.
  std::atomic<int> count{0};
  std::atomic<std::thread::id> last_tid{};
  std::atomic<unsigned> generation{0};

  // After a fork, the counters describe the parent: forget them (CPython's _after_fork).
  void refresh() {
    unsigned g = fork_generation();
    if (generation.load(std::memory_order_relaxed) != g) [[unlikely]] {
      count = 0;
      last_tid = std::thread::id{};
      generation = g;
    }
  }

  // Only Lock and RLock (one holder at a time) keep the owner; a counting Semaphore has none.
  bool tracks_owner() const noexcept { return kind == 0 || maxvalue == 1; }

  // Threads of one process share these counters (CPython relies on its GIL here). Only the holder
  // writes them: last_tid, then count with release order; readers load count with acquire order,
  // then last_tid, so no thread can see a positive count together with its own stale id.
  bool is_mine() const {
    return count.load(std::memory_order_acquire) > 0 &&
           last_tid.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }
};

}  // namespace mp::detail

namespace mp {

using detail::SemLockState;

SemLock::SemLock(Kind kind, int value, int maxvalue, Context* ctx) {
  if (value < 0) throw ValueError("semaphore initial value must be >= 0");
  auto s = std::make_shared<SemLockState>();
  s->kind = kind;
  s->maxvalue = maxvalue;
  s->generation = detail::fork_generation();
  // An unguessable name; retried in the (astronomically unlikely) event it exists.
  for (int attempt = 0;; ++attempt) {
    std::string name = platform::NamedSemaphore::random_name();
    try {
      s->sem = platform::NamedSemaphore::create(name, static_cast<unsigned>(value));
      s->name = detail::OwnedName::created(std::move(name), &platform::NamedSemaphore::unlink, ctx);
      break;
    } catch (const std::system_error& e) {
      if (e.code() != std::errc::file_exists || attempt > 8) throw;
    }
  }
  state_ = std::move(s);
}

namespace {
SemLockState& live(const std::shared_ptr<SemLockState>& s) {
  if (!s) throw ValueError("use of an uninitialised synchronization object");
  s->refresh();
  return *s;
}
}  // namespace

bool SemLock::acquire(bool block, Timeout timeout) {
  SemLockState& s = live(state_);
  if (s.kind == recursive_mutex && s.is_mine()) {
    s.count.store(s.count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    return true;
  }
  bool ok;
  if (!block) {
    ok = s.sem.try_acquire();
  } else {
    if (timeout && timeout->count() < 0) timeout = Seconds(0);
    ok = s.sem.acquire(timeout);
  }
  if (!ok) return false;
  if (s.tracks_owner()) {
    s.last_tid.store(std::this_thread::get_id(), std::memory_order_relaxed);
    s.count.store(s.count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  return true;
}

void SemLock::release() {
  SemLockState& s = live(state_);
  if (s.kind == recursive_mutex) {
    if (!s.is_mine()) throw AssertionError("attempt to release recursive lock not owned by thread");
    if (int c = s.count.load(std::memory_order_relaxed); c > 1) {
      s.count.store(c - 1, std::memory_order_release);
      return;
    }
  } else if (s.maxvalue == INT_MAX) {
    // An unbounded Semaphore: sem_post itself reports overflow (EOVERFLOW), no need to read it.
  } else if (std::optional<int> v = s.sem.value()) {
    // As CPython: not an absolute guarantee, but it catches the misuse.
    if (*v >= s.maxvalue) throw ValueError("semaphore or lock released too many times");
  } else if (s.maxvalue == 1) {
    // No sem_getvalue (macOS): check a Lock is held by trying to take it.
    if (s.sem.try_acquire()) {
      s.sem.release();
      throw ValueError("semaphore or lock released too many times");
    }
  }
  // Give up ownership before the semaphore can pass to another thread.
  if (s.tracks_owner()) s.count.store(0, std::memory_order_release);
  s.sem.release();
}

bool SemLock::is_mine() const { return live(state_).is_mine(); }
int SemLock::count() const { return live(state_).count; }
const std::string& SemLock::name() const { return live(state_).name.str(); }
std::optional<int> SemLock::value() const { return live(state_).sem.value(); }

void SemLock::save(detail::Encoder& enc) const {
  SemLockState& s = live(state_);
  if (s.name.fork_only()) {
    throw ProcessError(
        "A SemLock created in a fork context is being shared with a process in a spawn context. This is "
        "not supported. Please use the same context to create multiprocessing objects and Process.");
  }
  enc(s.name.str(), s.kind, s.maxvalue);
}

void SemLock::load(detail::Decoder& dec) {
  auto s = std::make_shared<SemLockState>();
  std::string name;
  dec(name, s->kind, s->maxvalue);
  if (s->kind != recursive_mutex && s->kind != semaphore) throw DecodeError("mp: unknown SemLock kind");
  s->sem = platform::NamedSemaphore::open(name);
  s->name = detail::OwnedName::opened(std::move(name));
  s->generation = detail::fork_generation();
  state_ = std::move(s);
}

Lock::Lock(Context* ctx) : SemLock(semaphore, 1, 1, ctx) {}
RLock::RLock(Context* ctx) : SemLock(recursive_mutex, 1, 1, ctx) {}
Semaphore::Semaphore(int value, Context* ctx) : SemLock(semaphore, value, INT_MAX, ctx) {}
Semaphore::Semaphore(int value, int maxvalue, Context* ctx) : SemLock(semaphore, value, maxvalue, ctx) {}
BoundedSemaphore::BoundedSemaphore(int value, Context* ctx) : Semaphore(value, value, ctx) {}

int Semaphore::get_value() const {
  std::optional<int> v = value();
  if (!v) throw ProcessError("Semaphore::get_value: this platform cannot read a semaphore's value (macOS)");
  return *v;
}

// ---- Condition ------------------------------------------------------------------------------
Condition::Condition(std::optional<SemLock> lock, Context* ctx)
    : lock_(lock ? std::move(*lock) : static_cast<SemLock>(RLock(ctx))),
      sleeping_count_(0, ctx),
      woken_count_(0, ctx),
      wait_semaphore_(0, ctx) {}

bool Condition::wait(Timeout timeout) {
  if (!lock_.is_mine()) throw AssertionError("must acquire() condition before using wait()");
  sleeping_count_.release();  // this thread is going to sleep
  const int count = lock_.count();
  for (int i = 0; i < count; ++i) lock_.release();
  bool woken = false;
  try {
    woken = wait_semaphore_.acquire(true, timeout);
  } catch (...) {
    woken_count_.release();
    for (int i = 0; i < count; ++i) lock_.acquire();
    throw;
  }
  woken_count_.release();  // this thread has woken
  for (int i = 0; i < count; ++i) lock_.acquire();
  return woken;
}

bool Condition::wait_for(const std::function<bool()>& pred, Timeout timeout) {
  bool result = pred();
  if (result) return result;
  using clock = std::chrono::steady_clock;
  std::optional<clock::time_point> end;
  if (timeout) end = clock::now() + std::chrono::duration_cast<clock::duration>(*timeout);
  while (!result) {
    Timeout wait_time;
    if (end) {
      wait_time = std::chrono::duration_cast<Seconds>(*end - clock::now());
      if (wait_time->count() <= 0) break;
    }
    wait(wait_time);
    result = pred();
  }
  return result;
}

void Condition::notify(int n) {
  if (!lock_.is_mine()) throw AssertionError("lock is not owned");
  if (wait_semaphore_.acquire(false)) throw AssertionError("Condition: the wait semaphore should be zero");
  // Account for timeouts since the last notify: subtract woken from sleeping, rezero woken.
  while (woken_count_.acquire(false)) {
    if (!sleeping_count_.acquire(false)) throw AssertionError("Condition::notify: sleeping count out of step");
  }
  int sleepers = 0;
  while (sleepers < n && sleeping_count_.acquire(false)) {
    wait_semaphore_.release();  // wake up one sleeper
    ++sleepers;
  }
  if (sleepers) {
    for (int i = 0; i < sleepers; ++i) woken_count_.acquire();  // wait for a sleeper to wake
    // Rezero the wait semaphore in case some timeouts just happened.
    while (wait_semaphore_.acquire(false)) {
    }
  }
}

void Condition::notify_all() { notify(INT_MAX); }

// ---- Event ----------------------------------------------------------------------------------
Event::Event(Context* ctx) : cond_(Lock(ctx), ctx), flag_(0, ctx) {}

bool Event::is_set() {
  std::lock_guard guard(cond_);
  if (flag_.acquire(false)) {
    flag_.release();
    return true;
  }
  return false;
}

void Event::set() {
  std::lock_guard guard(cond_);
  flag_.acquire(false);
  flag_.release();
  cond_.notify_all();
}

void Event::clear() {
  std::lock_guard guard(cond_);
  flag_.acquire(false);
}

bool Event::wait(Timeout timeout) {
  std::lock_guard guard(cond_);
  if (flag_.acquire(false)) {
    flag_.release();
  } else {
    cond_.wait(timeout);
  }
  if (flag_.acquire(false)) {
    flag_.release();
    return true;
  }
  return false;
}

// ---- Barrier --------------------------------------------------------------------------------
}  // namespace mp

namespace mp::detail {

struct BarrierShared {
  int parties = 1;
  Timeout timeout;
  Condition cond{std::nullopt, nullptr};
  platform::SharedMemorySegment segment;  // two ints: state and count, read under the lock
  OwnedName name;
  std::shared_ptr<TaskBase> action;        // made here: call() runs it
  std::optional<TaskDescriptor> received;  // arrived from the parent: run through its trampoline

  int& state() { return reinterpret_cast<int*>(segment.bytes().data())[0]; }
  int& count() { return reinterpret_cast<int*>(segment.bytes().data())[1]; }

  void run_action() {
    if (action) {
      action->call();
    } else if (received) {
      Decoder dec(received->payload);
      run_task(*received, dec);
    }
  }
};

}  // namespace mp::detail

namespace mp {

using detail::BarrierShared;

Barrier::Barrier(Made, int parties, std::shared_ptr<detail::TaskBase> action, Timeout timeout, Context* ctx) {
  if (parties <= 0) throw ValueError("parties must be >= 1");
  auto b = std::make_shared<BarrierShared>();
  b->parties = parties;
  b->timeout = timeout;
  b->cond = mp::Condition(std::nullopt, ctx);
  b->action = std::move(action);
  std::string name = platform::SharedMemorySegment::random_name();
  b->segment = platform::SharedMemorySegment::create(name, 2 * sizeof(int));
  b->name = detail::OwnedName::created(std::move(name), &platform::SharedMemorySegment::unlink, ctx);
  shared_ = std::move(b);
}

namespace {
BarrierShared& live(const std::shared_ptr<BarrierShared>& b) {
  if (!b) throw ValueError("use of an uninitialised Barrier");
  return *b;
}

// threading.Barrier's states: 0 filling, 1 draining, -1 resetting, -2 broken.
void barrier_break(BarrierShared& b) {
  b.state() = -2;
  b.cond.notify_all();
}
}  // namespace

int Barrier::wait(Timeout timeout) {
  BarrierShared& b = live(shared_);
  if (!timeout) timeout = b.timeout;
  std::lock_guard guard(b.cond);
  // Block while the barrier drains or resets.
  while (b.state() == -1 || b.state() == 1) b.cond.wait();
  if (b.state() < 0) throw BrokenBarrierError();
  const int index = b.count()++;
  struct Exit {  // as threading.Barrier's finally: leave, and wake those waiting for the drain
    BarrierShared& b;
    ~Exit() {
      if (--b.count() == 0 && (b.state() == -1 || b.state() == 1)) {
        b.state() = 0;
        b.cond.notify_all();
      }
    }
  } exit{b};
  if (index + 1 == b.parties) {
    try {
      b.run_action();
    } catch (...) {
      barrier_break(b);
      throw;
    }
    b.state() = 1;  // drain
    b.cond.notify_all();
  } else {
    if (!b.cond.wait_for([&b] { return b.state() != 0; }, timeout)) {
      barrier_break(b);
      throw BrokenBarrierError();
    }
    if (b.state() < 0) throw BrokenBarrierError();
  }
  return index;
}

void Barrier::reset() {
  BarrierShared& b = live(shared_);
  std::lock_guard guard(b.cond);
  if (b.count() > 0) {
    if (b.state() == 0 || b.state() == -2) b.state() = -1;  // wake the waiters; clears on the last exit
  } else {
    b.state() = 0;
  }
  b.cond.notify_all();
}

void Barrier::abort() {
  BarrierShared& b = live(shared_);
  std::lock_guard guard(b.cond);
  barrier_break(b);
}

int Barrier::parties() const { return live(shared_).parties; }

int Barrier::n_waiting() const {
  BarrierShared& b = live(shared_);
  std::lock_guard guard(b.cond);
  return b.state() == 0 ? b.count() : 0;
}

bool Barrier::broken() const {
  BarrierShared& b = live(shared_);
  std::lock_guard guard(b.cond);
  return b.state() == -2;
}

void Barrier::save(detail::Encoder& enc) const {
  BarrierShared& b = live(shared_);
  if (b.name.fork_only()) {
    throw ProcessError("A Barrier created in a fork context is being shared with a process in a spawn context. "
                       "Please use the same context to create multiprocessing objects and Process.");
  }
  detail::TaskDescriptor action;
  if (b.action) {
    if (auto why = b.action->describe(action)) throw ProcessError("mp: the Barrier's action cannot travel: " + *why);
    if (!action.handles.empty()) throw ProcessError("mp: a Barrier action cannot carry OS handles");
  } else if (b.received) {
    action = *b.received;
  }
  std::optional<double> timeout;
  if (b.timeout) timeout = b.timeout->count();
  enc(b.parties, timeout, b.cond, b.name.str(), action);
}

void Barrier::load(detail::Decoder& dec) {
  auto b = std::make_shared<BarrierShared>();
  std::optional<double> timeout;
  detail::TaskDescriptor action;
  std::string name;
  dec(b->parties, timeout, b->cond, name, action);
  if (timeout) b->timeout = Seconds(*timeout);
  b->received = std::move(action);
  b->segment = platform::SharedMemorySegment::open(name);
  if (b->segment.size() < 2 * sizeof(int)) throw DecodeError("mp: Barrier state too small");
  b->name = detail::OwnedName::opened(std::move(name));
  shared_ = std::move(b);
}

Barrier Context::Barrier(int parties, Timeout timeout) { return mp::Barrier(parties, timeout, this); }

Lock Context::Lock() { return mp::Lock(this); }
RLock Context::RLock() { return mp::RLock(this); }
Semaphore Context::Semaphore(int value) { return mp::Semaphore(value, this); }
BoundedSemaphore Context::BoundedSemaphore(int value) { return mp::BoundedSemaphore(value, this); }
Condition Context::Condition() { return mp::Condition(std::nullopt, this); }
Condition Context::Condition(const SemLock& lock) { return mp::Condition(lock, this); }
Event Context::Event() { return mp::Event(this); }

}  // namespace mp
