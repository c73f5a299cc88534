// Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event: CPython's synchronize.py and the
// SemLock of its semaphore.c, over the named-semaphore seam.
#include <mp/context.hpp>
#include <mp/resource_tracker.hpp>
#include <mp/synchronize.hpp>

#include "platform/address_wait.hpp"
#include "platform/process.hpp"
#include "platform/semaphore.hpp"
#include "platform/shm.hpp"
#include "process_state.hpp"
#include "word_lock.hpp"

#include <atomic>
#include <climits>
#include <cstdint>
#include <new>
#include <thread>

namespace mp::detail {

WordLockResult word_lock_acquire_slow(std::atomic<std::uint32_t>& w, std::uint32_t me, const Timeout& timeout) {
  using clock = std::chrono::steady_clock;
  std::optional<clock::time_point> deadline;
  if (timeout) deadline = clock::now() + std::chrono::duration_cast<clock::duration>(std::max(*timeout, Seconds(0)));
  for (;;) {
    std::uint32_t v = w.load(std::memory_order_relaxed);
    if (v == 0) {
      // Others may be asleep: keep the contended mark so our release wakes one.
      if (w.compare_exchange_weak(v, me | kContended, std::memory_order_acquire, std::memory_order_relaxed)) {
        return WordLockResult::acquired;
      }
      continue;
    }
    if ((v & kContended) == 0) {
      if (!w.compare_exchange_weak(v, v | kContended, std::memory_order_relaxed)) continue;
      v |= kContended;
    }
    std::chrono::nanoseconds step = kOwnerCheck;
    bool last = false;
    if (deadline) {
      auto left = *deadline - clock::now();
      if (left <= left.zero()) {
        last = true;
      } else if (left < step) {
        step = std::chrono::duration_cast<std::chrono::nanoseconds>(left);
      }
    }
    if (last || !platform::wait_on_address(w, v, step)) {
      // A while without a wake-up: is the holder still there?
      std::uint32_t holder = v & kPidMask;
      if (holder != me && !platform::process_exists(static_cast<int>(holder))) {
        if (w.compare_exchange_strong(v, me | kContended, std::memory_order_acquire, std::memory_order_relaxed)) {
          return WordLockResult::owner_died;
        }
        continue;
      }
      if (last) return WordLockResult::timed_out;
    }
  }
}

bool word_lock_release(std::atomic<std::uint32_t>& w, std::uint32_t me) {
  std::uint32_t v = me;
  if (w.compare_exchange_strong(v, 0, std::memory_order_release, std::memory_order_relaxed)) return true;
  do {
    if (v == 0) return false;
  } while (!w.compare_exchange_weak(v, 0, std::memory_order_release, std::memory_order_relaxed));
  if (v & kContended) platform::wake_address(w, 1);
  return true;
}

// The name of an OS object (semaphore, shared memory) and who removes it. CPython's rule: under
// the fork context the creator removes it at once (children inherit the mapping, and the object
// cannot go to a spawn child); otherwise it lives until the creating process's last handle goes —
// never removed from a forked copy, nor by a process that only opened it — and meanwhile the
// resource tracker holds it, to remove it if the whole process tree dies first.
class OwnedName {
 public:
  using Unlink = void (*)(const std::string&);
  OwnedName() = default;
  static OwnedName created(std::string name, Unlink unlink, const char* type, Context* ctx) {
    OwnedName n;
    n.name_ = std::move(name);
    if (resolve_start_method(ctx) == "fork") {
      unlink(n.name_);
      n.fork_only_ = true;
    } else {
      try {
        resource_tracker::register_resource(n.name_, type);
      } catch (...) {
        unlink(n.name_);
        throw;
      }
      n.unlink_ = unlink;
      n.type_ = type;
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
      : name_(std::move(o.name_)), unlink_(std::exchange(o.unlink_, nullptr)), type_(o.type_),
        fork_only_(o.fork_only_), generation_(o.generation_) {}
  OwnedName& operator=(OwnedName&& o) noexcept {
    if (this != &o) {
      remove();
      name_ = std::move(o.name_);
      unlink_ = std::exchange(o.unlink_, nullptr);
      type_ = o.type_;
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
      try {
        resource_tracker::unregister_resource(name_, type_);
      } catch (const std::exception&) {
        // No tracker to tell (it died): it can only find the name already gone.
      }
    }
    unlink_ = nullptr;
  }
  std::string name_;
  Unlink unlink_ = nullptr;  // set in the creating process, unless already removed
  const char* type_ = "";
  bool fork_only_ = false;
  unsigned generation_ = 0;
};

// This process's id, cached (getpid() is a system call) and refreshed in a forked child.
std::atomic<std::uint32_t> g_pid{0};
[[gnu::noinline]] std::uint32_t pid_first_time() {
  static const bool registered = [] {
    platform::register_atfork(nullptr, nullptr, [] { g_pid.store(static_cast<std::uint32_t>(platform::current_pid())); });
    return true;
  }();
  (void)registered;
  auto pid = static_cast<std::uint32_t>(platform::current_pid());
  g_pid.store(pid, std::memory_order_relaxed);
  return pid;
}
inline std::uint32_t my_pid() noexcept {
  std::uint32_t p = g_pid.load(std::memory_order_relaxed);
  return p != 0 ? p : pid_first_time();
}

// Which thread of this process: the address of a thread-local (one instruction, where
// std::this_thread::get_id() is a call into the C library).
inline std::uintptr_t this_thread_tag() noexcept {
  static thread_local char tag;
  return reinterpret_cast<std::uintptr_t>(&tag);
}

// A word in its own small shared-memory object: the state of a Lock, RLock or Event.
struct SharedWord {
  platform::SharedMemorySegment segment;
  OwnedName name;
  std::atomic<std::uint32_t>* word = nullptr;

  static constexpr std::size_t size = 64;  // a cache line of its own

  void create(Context* ctx) {
    for (int attempt = 0;; ++attempt) {
      try {
        create_as(platform::SharedMemorySegment::random_name(), ctx);
        return;
      } catch (const std::system_error& e) {
        if (e.code() != std::errc::file_exists || attempt > 8) throw;
      }
    }
  }
  // Exclusively, under a name already chosen (EEXIST if it is taken).
  void create_as(std::string n, Context* ctx) {
    segment = platform::SharedMemorySegment::create(n, size);
    word = new (segment.bytes().data()) std::atomic<std::uint32_t>(0);
    name = OwnedName::created(std::move(n), &platform::SharedMemorySegment::unlink, "shared_memory", ctx);
  }
  void open(std::string n) {
    segment = platform::SharedMemorySegment::open(n);
    if (segment.size() < size) throw DecodeError("mp: shared state '" + n + "' is too small");
    word = reinterpret_cast<std::atomic<std::uint32_t>*>(segment.bytes().data());
    name = OwnedName::opened(std::move(n));
  }
};


struct SemLockState {
  // A Lock or RLock: the word. A Semaphore: a named semaphore.
  SharedWord lock;
  platform::NamedSemaphore sem;
  OwnedName sem_name;
  // A Semaphore where the OS cannot read its count (macOS): the count, kept in a word of shared
  // memory under the semaphore's own name (another namespace), so the name still says it all.
  // Raised before each post and lowered after each successful wait, so it is never below the
  // semaphore's and equal to it whenever no operation is under way (a process killed between
  // the two steps leaves it one too high).
  SharedWord counter;
  int kind = 0;
  int maxvalue = 1;
  // This process's view (CPython keeps it in the SemLock object): how many times it holds the
  // semaphore and which thread took it last. A forked child starts from zero.
  std::atomic<int> count{0};
  std::atomic<std::uintptr_t> last_tid{0};
  std::atomic<bool> owner_died{false};
  std::atomic<unsigned> generation{0};
  std::uint32_t me = 0;  // this process's id, as the lock word holds it

  bool is_word() const noexcept { return lock.word != nullptr; }
  const std::string& name() const noexcept { return is_word() ? lock.name.str() : sem_name.str(); }

  // After a fork, the counters describe the parent: forget them (CPython's _after_fork).
  void refresh() {
    if (generation.load(std::memory_order_relaxed) != fork_generation()) [[unlikely]] after_fork();
  }
  [[gnu::noinline]] void after_fork() {
    unsigned g = fork_generation();
    // A Lock's holder is the word's pid, never ours in a new child: its thread id needs no reset
    // (and the fast paths, which skip this refresh, may already have set it for this child).
    if (!is_plain_lock()) {
      count = 0;
      last_tid = 0;
      owner_died = false;
    }
    me = static_cast<std::uint32_t>(platform::current_pid());
    generation = g;
  }

  // Only Lock and RLock (one holder at a time) keep the owner; a counting Semaphore has none.
  bool tracks_owner() const noexcept { return kind == 0 || maxvalue == 1; }

  // Threads of one process share these counters (CPython relies on its GIL here). Only the holder
  // writes them: last_tid, then count with release order; readers load count with acquire order,
  // then last_tid, so no thread can see a positive count together with its own stale id.
  // A Lock (not recursive) needs no count: the word says which process holds it and last_tid
  // which thread (cleared before every release, so a stale id never pairs with our pid).
  bool is_plain_lock() const noexcept { return lock.word != nullptr && kind != 0; }

  bool is_mine() const {
    if (is_plain_lock()) {
      return (lock.word->load(std::memory_order_acquire) & kPidMask) == me &&
             last_tid.load(std::memory_order_relaxed) == this_thread_tag();
    }
    return count.load(std::memory_order_acquire) > 0 &&
           last_tid.load(std::memory_order_relaxed) == this_thread_tag();
  }

  // How many times this process (any thread) holds it, as CPython's _count().
  int held_count() const {
    if (is_plain_lock()) return (lock.word->load(std::memory_order_acquire) & kPidMask) == me ? 1 : 0;
    return count.load(std::memory_order_relaxed);
  }

  void took(bool died) {
    if (died || owner_died.load(std::memory_order_relaxed)) owner_died.store(died, std::memory_order_relaxed);
    last_tid.store(this_thread_tag(), std::memory_order_relaxed);
    if (!is_plain_lock()) count.store(count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

  [[gnu::noinline]] bool word_acquire_slow(const Timeout& timeout) {
    WordLockResult r = word_lock_acquire_slow(*lock.word, me, timeout);
    if (r == WordLockResult::timed_out) return false;
    took(r == WordLockResult::owner_died);
    return true;
  }

  void word_release() {
    if (!word_lock_release(*lock.word, me)) throw ValueError("semaphore or lock released too many times");
  }

  // After a successful wait on the semaphore.
  void count_taken() noexcept {
    if (counter.word != nullptr) counter.word->fetch_sub(1, std::memory_order_relaxed);
  }
};

}  // namespace mp::detail

namespace mp {

using detail::SemLockState;

SemLock::SemLock(Kind kind, int value, int maxvalue, Context* ctx, bool lock_kind_) {
  if (value < 0) throw ValueError("semaphore initial value must be >= 0");
  auto s = std::make_shared<SemLockState>();
  s->kind = kind;
  s->maxvalue = maxvalue;
  s->generation = detail::fork_generation();
  s->me = static_cast<std::uint32_t>(platform::current_pid());
  if (s->me > detail::kPidMask) throw ProcessError("mp: process id too large for a Lock word");
  if (lock_kind_) {
    s->lock.create(ctx);
  } else {
    // An unguessable name; retried in the (astronomically unlikely) event it exists.
    for (int attempt = 0;; ++attempt) {
      std::string name = platform::NamedSemaphore::random_name();
      try {
        s->sem = platform::NamedSemaphore::create(name, static_cast<unsigned>(value));
        s->sem_name = detail::OwnedName::created(name, &platform::NamedSemaphore::unlink, "semaphore", ctx);
        if (!platform::NamedSemaphore::can_read_value()) {
          s->counter.create_as(std::move(name), ctx);
          s->counter.word->store(static_cast<std::uint32_t>(value), std::memory_order_relaxed);
        }
        break;
      } catch (const std::system_error& e) {
        if (e.code() != std::errc::file_exists || attempt > 8) throw;
      }
    }
  }
  state_ = std::move(s);
}

namespace {
[[noreturn, gnu::cold, gnu::noinline]] void uninitialised() {
  throw ValueError("use of an uninitialised synchronization object");
}
inline SemLockState& live(const std::shared_ptr<SemLockState>& s) {
  if (!s) [[unlikely]] uninitialised();
  s->refresh();
  return *s;
}
}  // namespace

bool SemLock::acquire(bool block, Timeout timeout) {
  if (SemLockState* p = state_.get(); p != nullptr && p->is_plain_lock()) [[likely]] {
    // A Lock: one compare-and-swap with our pid (no after-fork refresh needed here: the word
    // never holds a forked child's pid before the child itself writes it).
    std::uint32_t free = 0;
    if (p->lock.word->compare_exchange_strong(free, detail::my_pid(), std::memory_order_acquire,
                                              std::memory_order_relaxed)) [[likely]] {
      p->last_tid.store(detail::this_thread_tag(), std::memory_order_relaxed);
      // (Clear unless a forked copy still carries the parent's flag.)
      if (p->owner_died.load(std::memory_order_relaxed)) [[unlikely]] p->owner_died.store(false, std::memory_order_relaxed);
      return true;
    }
  }
  return acquire_general(block, timeout);  // a tail call: the fast path above needs no frame
}

bool SemLock::acquire_general(bool block, Timeout timeout) {
  SemLockState& s = live(state_);
  if (s.is_word()) [[likely]] {
    // The fast path: nothing but the compare-and-swap (and RLock's recursion check).
    if (s.kind == recursive_mutex && s.is_mine()) {
      s.count.store(s.count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
      return true;
    }
    std::uint32_t free = 0;
    if (s.lock.word->compare_exchange_strong(free, s.me, std::memory_order_acquire, std::memory_order_relaxed)) [[likely]] {
      if (s.kind != recursive_mutex) {
        s.last_tid.store(detail::this_thread_tag(), std::memory_order_relaxed);  // owner_died is clear
        return true;
      }
      s.took(false);
      return true;
    }
  } else if (s.kind != recursive_mutex && s.sem.try_acquire()) {
    // A Semaphore with a count to take: one sem_trywait, whatever block and timeout say.
    s.count_taken();
    if (s.tracks_owner()) s.took(false);
    return true;
  }
  return acquire_slow(block, timeout);
}

bool SemLock::acquire_slow(bool block, const Timeout& timeout) {
  SemLockState& s = *state_;
  if (s.is_word()) return block && s.word_acquire_slow(timeout);
  if (s.kind == recursive_mutex && s.is_mine()) {
    s.count.store(s.count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    return true;
  }
  bool ok;
  if (!block) {
    ok = s.sem.try_acquire();
  } else {
    ok = s.sem.acquire(timeout && timeout->count() < 0 ? Timeout(Seconds(0)) : timeout);
  }
  if (!ok) return false;
  s.count_taken();
  if (s.tracks_owner()) s.took(false);
  return true;
}

void SemLock::release() {
  if (SemLockState* p = state_.get(); p != nullptr && p->is_plain_lock()) [[likely]] {
    if (!p->owner_died.load(std::memory_order_relaxed)) [[likely]] {
      // One exchange: whoever held it (a Lock may be released by any thread or process), it is
      // free now; wake a sleeper if there is one. Releasing a free Lock is the error CPython
      // raises (the word was 0 and stays 0).
      const std::uintptr_t tid = p->last_tid.load(std::memory_order_relaxed);
      p->last_tid.store(0, std::memory_order_relaxed);
      const std::uint32_t was = p->lock.word->exchange(0, std::memory_order_release);
      if (was == 0) [[unlikely]] {
        p->last_tid.store(tid, std::memory_order_relaxed);
        throw ValueError("semaphore or lock released too many times");
      }
      if (was & detail::kContended) platform::wake_address(*p->lock.word, 1);
      return;
    }
  }
  release_general();
}

void SemLock::release_general() {
  SemLockState& s = live(state_);
  if (s.is_word() && s.kind != recursive_mutex) [[likely]] {
    // The fast path: a Lock this process holds, nobody asleep on it. Give up ownership first
    // (plain stores: only the holder writes these), then one compare-and-swap.
    if (s.owner_died.load(std::memory_order_relaxed)) [[unlikely]] s.owner_died.store(false, std::memory_order_relaxed);
    const std::uintptr_t tid = s.last_tid.load(std::memory_order_relaxed);
    s.last_tid.store(0, std::memory_order_relaxed);
    std::uint32_t mine = s.me;
    if (s.lock.word->compare_exchange_strong(mine, 0, std::memory_order_release, std::memory_order_relaxed)) [[likely]] {
      return;
    }
    try {
      s.word_release();
    } catch (...) {
      s.last_tid.store(tid, std::memory_order_relaxed);  // it was not held: nothing changes
      throw;
    }
    return;
  }
  if (s.kind == recursive_mutex) {
    if (!s.is_mine()) throw AssertionError("attempt to release recursive lock not owned by thread");
    if (int c = s.count.load(std::memory_order_relaxed); c > 1) {
      s.count.store(c - 1, std::memory_order_release);
      return;
    }
  }
  if (s.is_word()) {
    // Give up ownership before the lock can pass to another thread. (Plain stores: only the
    // holder writes these, and an atomic read-modify-write costs as much as the lock itself.)
    int before = s.count.load(std::memory_order_relaxed);
    s.count.store(0, std::memory_order_release);
    if (s.owner_died.load(std::memory_order_relaxed)) [[unlikely]] s.owner_died.store(false, std::memory_order_relaxed);
    try {
      s.word_release();
    } catch (...) {
      s.count.store(before, std::memory_order_release);  // it was not held: nothing changes
      throw;
    }
    return;
  }
  if (s.counter.word != nullptr) {
    // Our own count: checked against the bound and raised in one step (exact, where the
    // sem_getvalue check below lets two racing releases past).
    std::atomic<std::uint32_t>& c = *s.counter.word;
    std::uint32_t v = c.load(std::memory_order_relaxed);
    do {
      if (s.maxvalue != INT_MAX && v >= static_cast<std::uint32_t>(s.maxvalue)) {
        throw ValueError("semaphore or lock released too many times");
      }
    } while (!c.compare_exchange_weak(v, v + 1, std::memory_order_relaxed));
  } else if (s.maxvalue != INT_MAX) {
    // (An unbounded Semaphore: sem_post itself reports overflow, EOVERFLOW.) As CPython: not an
    // absolute guarantee, but it catches the misuse.
    if (std::optional<int> v = s.sem.value(); v && *v >= s.maxvalue) {
      throw ValueError("semaphore or lock released too many times");
    }
  }
  if (s.tracks_owner()) s.count.store(0, std::memory_order_release);
  try {
    s.sem.release();
  } catch (...) {
    if (s.counter.word != nullptr) s.counter.word->fetch_sub(1, std::memory_order_relaxed);
    throw;
  }
}

bool SemLock::is_mine() const { return live(state_).is_mine(); }
bool SemLock::owner_died() const {
  SemLockState& s = live(state_);
  return s.is_mine() && s.owner_died.load(std::memory_order_relaxed);
}
int SemLock::count() const { return live(state_).held_count(); }
const std::string& SemLock::name() const { return live(state_).name(); }
std::optional<int> SemLock::value() const {
  SemLockState& s = live(state_);
  if (s.is_word()) return s.lock.word->load(std::memory_order_relaxed) == 0 ? 1 : 0;
  if (s.counter.word != nullptr) return static_cast<int>(s.counter.word->load(std::memory_order_relaxed));
  return s.sem.value();
}

void SemLock::save(detail::Encoder& enc) const {
  SemLockState& s = live(state_);
  if (s.is_word() ? s.lock.name.fork_only() : s.sem_name.fork_only()) {
    throw ProcessError(
        "A SemLock created in a fork context is being shared with a process in a spawn context. This is "
        "not supported. Please use the same context to create multiprocessing objects and Process.");
  }
  enc(s.name(), s.kind, s.maxvalue, s.is_word());
}

void SemLock::load(detail::Decoder& dec) {
  auto s = std::make_shared<SemLockState>();
  std::string name;
  bool word = false;
  dec(name, s->kind, s->maxvalue, word);
  if (s->kind != recursive_mutex && s->kind != semaphore) throw DecodeError("mp: unknown SemLock kind");
  if (word) {
    s->lock.open(std::move(name));
  } else {
    s->sem = platform::NamedSemaphore::open(name);
    if (!platform::NamedSemaphore::can_read_value()) s->counter.open(name);
    s->sem_name = detail::OwnedName::opened(std::move(name));
  }
  s->generation = detail::fork_generation();
  s->me = static_cast<std::uint32_t>(platform::current_pid());
  state_ = std::move(s);
}

Lock::Lock(Context* ctx) : SemLock(semaphore, 1, 1, ctx, true) {}
RLock::RLock(Context* ctx) : SemLock(recursive_mutex, 1, 1, ctx, true) {}
Semaphore::Semaphore(int value, Context* ctx) : SemLock(semaphore, value, INT_MAX, ctx) {}
Semaphore::Semaphore(int value, int maxvalue, Context* ctx) : SemLock(semaphore, value, maxvalue, ctx) {}
BoundedSemaphore::BoundedSemaphore(int value, Context* ctx) : Semaphore(value, value, ctx) {}

int Semaphore::get_value() const {
  std::optional<int> v = value();
  if (!v) throw ProcessError("Semaphore::get_value: this platform cannot read a semaphore's value");
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
// Bit 0: the flag. Bit 1: someone may be asleep waiting for the flag.
}  // namespace mp

namespace mp::detail {
struct EventState {
  SharedWord shared;
  std::atomic<std::uint32_t>& word() const { return *shared.word; }
};
}  // namespace mp::detail

namespace mp {

namespace {
constexpr std::uint32_t kEventSet = 1;
constexpr std::uint32_t kEventSleepers = 2;

detail::EventState& live(const std::shared_ptr<detail::EventState>& e) {
  if (!e) [[unlikely]] throw ValueError("use of an uninitialised Event");
  return *e;
}
}  // namespace

Event::Event(Context* ctx) : state_(std::make_shared<detail::EventState>()) { state_->shared.create(ctx); }

bool Event::is_set() const { return live(state_).word().load(std::memory_order_acquire) & kEventSet; }

void Event::set() {
  auto& w = live(state_).word();
  if (w.exchange(kEventSet, std::memory_order_acq_rel) & kEventSleepers) platform::wake_address(w, INT_MAX);
}

void Event::clear() { live(state_).word().fetch_and(~kEventSet, std::memory_order_acq_rel); }

bool Event::wait(Timeout timeout) {
  auto& w = live(state_).word();
  using clock = std::chrono::steady_clock;
  std::optional<clock::time_point> deadline;
  if (timeout) deadline = clock::now() + std::chrono::duration_cast<clock::duration>(std::max(*timeout, Seconds(0)));
  for (;;) {
    std::uint32_t v = w.load(std::memory_order_acquire);
    if (v & kEventSet) return true;
    if ((v & kEventSleepers) == 0) {
      if (!w.compare_exchange_weak(v, v | kEventSleepers, std::memory_order_acq_rel)) continue;
      v |= kEventSleepers;
    }
    std::optional<std::chrono::nanoseconds> step;
    if (deadline) {
      auto left = *deadline - clock::now();
      if (left <= left.zero()) return (w.load(std::memory_order_acquire) & kEventSet) != 0;
      step = std::chrono::duration_cast<std::chrono::nanoseconds>(left);
    }
    platform::wait_on_address(w, v, step);
  }
}

void Event::save(detail::Encoder& enc) const {
  auto& e = live(state_);
  if (e.shared.name.fork_only()) {
    throw ProcessError("An Event created in a fork context is being shared with a process in a spawn context. "
                       "Please use the same context to create multiprocessing objects and Process.");
  }
  enc(e.shared.name.str());
}

void Event::load(detail::Decoder& dec) {
  std::string name;
  dec(name);
  auto e = std::make_shared<detail::EventState>();
  e->shared.open(std::move(name));
  state_ = std::move(e);
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
  b->name = detail::OwnedName::created(std::move(name), &platform::SharedMemorySegment::unlink, "shared_memory", ctx);
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
