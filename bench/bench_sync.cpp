// bench_sync - what mp's synchronization primitives cost, beside the raw semaphore calls they are
// built on. Run it alone (Google Benchmark flags apply) or through bench/run.py, which puts the
// figures beside CPython's multiprocessing.synchronize and the limits of this machine.
//
// Uncontended, in this process (wall-clock time per iteration):
//   lock_acquire_release        mp::Lock: acquire(); release()                        (ns)
//   rlock_acquire_release       mp::RLock: acquire(); release()                       (ns)
//   semaphore_acquire_release   mp::Semaphore(1): acquire(); release()                (ns)
//   event_set_clear             mp::Event: set(); clear()                             (ns)
//   lock_create_destroy         mp::Lock constructed and dropped (default context)    (us)
//   raw_sem_pshared_wait_post   sem_t, sem_init(pshared=1) in an anonymous shared mapping:
//                               sem_wait(); sem_post()  (= limits.c sem_pshared wait_post)  (ns)
//   raw_sem_open_unlink_close   sem_open(O_CREAT|O_EXCL); sem_unlink(); sem_close()
//                               (mp's order of the calls of limits.c sem_open open_close_unlink) (us)
//
// Two processes, a token handed back and forth (time per iteration = one round trip, us); the
// child is an mp::Process started with the fork context, pinned first, started and warmed up
// before the timed loop. The last part of the name is the placement, as in bench_connection:
// unpinned, same_cpu (both on CPU 0), cross_cpu (parent on CPU 0, child on CPU 1).
//   lock_pingpong/<pl>        two mp::Locks, both taken at the start: the parent releases `ping`
//                             and acquires `pong`, the child acquires `ping` and releases `pong`
//   condition_pingpong/<pl>   one mp::Condition over an mp::Lock and a turn word in shared memory:
//                             each side sets the turn, notify()s and wait_for()s its own turn
//   raw_sem_pingpong/<pl>     fork(); two process-shared sem_t: sem_post / sem_timedwait
//                             (= limits.c sem_pingpong, which uses sem_wait)
//
// Robustness: every wait of the lock and raw ping-pongs has a timeout (kTimeout), so a dead child
// fails the case instead of hanging it. Condition::wait/notify also wait without a timeout (to
// re-take the lock, and in notify for the woken sleeper, as CPython's); there a watchdog thread
// ends the program (after killing the child) when a round trip makes no progress for kStall.
// Every child dies with this program (PR_SET_PDEATHSIG), so none is left waiting for ever.
#include <mp/mp.hpp>

#include <benchmark/benchmark.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#if __has_include(<sched.h>) && __has_include(<semaphore.h>) && __has_include(<sys/mman.h>) && \
    __has_include(<sys/wait.h>) && __has_include(<unistd.h>) && defined(__linux__)
#define MP_BENCH_HAVE_LINUX 1
#include <fcntl.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#else
#define MP_BENCH_HAVE_LINUX 0
#endif

#include "placement.hpp"

namespace {

constexpr mp::Seconds kTimeout{10};        // any single wait of a ping-pong
constexpr std::chrono::seconds kStall{30};  // the Condition ping-pong's watchdog
constexpr int kWarmup = 200;

void fail(benchmark::State& state, const std::string& why) { state.SkipWithError(why.c_str()); }

// ---- uncontended ----------------------------------------------------------------------------------

template <class L>
void acquire_release(benchmark::State& state) {
  try {
    L lock;
    for (auto _ : state) {
      lock.acquire();
      lock.release();
    }
  } catch (const std::exception& e) {
    fail(state, e.what());
  }
}

void lock_acquire_release(benchmark::State& state) { acquire_release<mp::Lock>(state); }
void rlock_acquire_release(benchmark::State& state) { acquire_release<mp::RLock>(state); }
void semaphore_acquire_release(benchmark::State& state) { acquire_release<mp::Semaphore>(state); }

void event_set_clear(benchmark::State& state) {
  try {
    mp::Event ev;
    for (auto _ : state) {
      ev.set();
      ev.clear();
    }
  } catch (const std::exception& e) {
    fail(state, e.what());
  }
}

void lock_create_destroy(benchmark::State& state) {
  try {
    { mp::Lock warm; }  // the default context's resolution, libsodium's set-up
    for (auto _ : state) {
      mp::Lock lock;
      benchmark::DoNotOptimize(&lock);
    }
  } catch (const std::exception& e) {
    fail(state, e.what());
  }
}

#if MP_BENCH_HAVE_LINUX
// ---- shared memory, placements ----------------------------------------------------------------

// One anonymous shared mapping holding a T (inherited across fork()).
template <class T>
class SharedMap {
 public:
  SharedMap() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error(std::string("mmap: ") + std::strerror(errno));
    p_ = new (p) T{};
  }
  ~SharedMap() {
    p_->~T();
    ::munmap(p_, sizeof(T));
  }
  SharedMap(const SharedMap&) = delete;
  SharedMap& operator=(const SharedMap&) = delete;
  T* get() const { return p_; }
  T* operator->() const { return p_; }

 private:
  T* p_ = nullptr;
};

using mp_bench::kPlacements;
using mp_bench::Placement;

using mp_bench::cpu_allowed;

using mp_bench::pin_to;

pid_t g_bench_pid = -1;  // this program's process: the parent of every child

// A child's first act: it dies with the parent (Condition's untimed waits would otherwise leave an
// orphan waiting for ever), then pins itself.
void child_setup(int cpu) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != g_bench_pid) ::_exit(1);  // the parent went before the signal was armed
  pin_to(cpu);
}

using mp_bench::ParentPin;

// ---- the mp child -------------------------------------------------------------------------------

// Owns the child (fork context): on every way out (an error included) it ends it and reaps it.
class Child {
 public:
  template <class F>
  explicit Child(F&& target) : p_(mp::get_context("fork").Process(std::forward<F>(target))) {
    p_.start();
  }
  ~Child() {
    try {
      if (!finished_) p_.kill();  // a way out on an error: do not wait for a child that may wait for us
      p_.join();
    } catch (...) {
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  int pid() const { return p_.pid().value_or(-1); }
  // " (child exit code N)" once it has ended, " (child still running)" before.
  std::string status() {
    try {
      if (!p_.join(mp::Seconds(0))) return " (child still running)";
      auto code = p_.exitcode();
      return " (child exit code " + (code ? std::to_string(*code) : std::string("none")) + ")";
    } catch (const std::exception& e) {
      return std::string(" (") + e.what() + ")";
    }
  }
  // After the stop message: waits for the end; an error message unless the exit code is 0.
  std::optional<std::string> finish() {
    finished_ = p_.join(mp::Seconds(30));  // still running: the destructor kills it
    auto code = p_.exitcode();
    if (code == 0) return std::nullopt;
    return "child exit code " + (code ? std::to_string(*code) : std::string("none (still running)"));
  }

 private:
  mp::Process p_;
  bool finished_ = false;
};

// ---- two Locks ----------------------------------------------------------------------------------

struct StopFlag {
  std::atomic<int> stop{0};
};

void lock_pingpong(benchmark::State& state, Placement pl) {
  try {
    ParentPin pin(pl.parent);
    mp::Context& fork = mp::get_context("fork");
    mp::Lock ping = fork.Lock(), pong = fork.Lock();
    ping.acquire();  // both taken: each release below hands the token to the other side
    pong.acquire();
    SharedMap<StopFlag> flag;
    Child child([ping, pong, f = flag.get(), cpu = pl.child]() mutable {
      child_setup(cpu);
      for (;;) {
        if (!ping.acquire(true, kTimeout)) throw std::runtime_error("lock_pingpong child: no ping within the timeout");
        if (f->stop.load()) return;
        pong.release();
      }
    });
    auto round_trip = [&] {
      ping.release();
      return pong.acquire(true, kTimeout);
    };
    for (int i = 0; i < kWarmup; ++i) {
      if (!round_trip()) return fail(state, "lock_pingpong: no answer within the timeout" + child.status());
    }
    for (auto _ : state) {
      if (!round_trip()) return fail(state, "lock_pingpong: no answer within the timeout" + child.status());
    }
    flag->stop = 1;
    ping.release();
    if (auto err = child.finish()) fail(state, *err);
  } catch (const std::exception& e) {
    fail(state, e.what());
  }
}

// ---- Condition ----------------------------------------------------------------------------------

struct Turn {
  std::atomic<int> turn{0};  // 1: the child's move, 0: the parent's
  std::atomic<int> stop{0};
};

// Ends the whole program when `progress` stands still for kStall while armed: Condition's
// untimed waits would otherwise hang on a dead child.
class Watchdog {
 public:
  explicit Watchdog(int child_pid) : pid_(child_pid), thread_([this] { run(); }) {}
  ~Watchdog() {
    {
      std::lock_guard g(m_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  void tick() { progress_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void run() {
    std::unique_lock lk(m_);
    std::uint64_t last = progress_.load();
    auto since = std::chrono::steady_clock::now();
    while (!cv_.wait_for(lk, std::chrono::milliseconds(200), [this] { return done_; })) {
      std::uint64_t now = progress_.load();
      if (now != last) {
        last = now;
        since = std::chrono::steady_clock::now();
      } else if (std::chrono::steady_clock::now() - since > kStall) {
        std::fprintf(stderr, "bench_sync: condition_pingpong made no progress for %lld s (child %d dead?); exiting\n",
                     static_cast<long long>(kStall.count()), pid_);
        if (pid_ > 0) ::kill(pid_, SIGKILL);
        std::_Exit(3);
      }
    }
  }
  int pid_;
  std::mutex m_;
  std::condition_variable cv_;
  bool done_ = false;
  std::atomic<std::uint64_t> progress_{0};
  std::thread thread_;  // last: starts once the rest is built
};

void condition_pingpong(benchmark::State& state, Placement pl) {
  try {
    ParentPin pin(pl.parent);
    mp::Context& fork = mp::get_context("fork");
    mp::Condition cond = fork.Condition(fork.Lock());
    SharedMap<Turn> t;
    Child child([cond, sh = t.get(), cpu = pl.child]() mutable {
      child_setup(cpu);
      if (!cond.acquire(true, kTimeout)) throw std::runtime_error("condition_pingpong child: lock not acquired");
      for (;;) {
        if (!cond.wait_for([sh] { return sh->turn.load() == 1; }, kTimeout))
          throw std::runtime_error("condition_pingpong child: no turn within the timeout");
        if (sh->stop.load()) break;
        sh->turn = 0;
        cond.notify();
      }
      cond.release();
    });
    Watchdog dog(child.pid());
    if (!cond.acquire(true, kTimeout)) return fail(state, "condition_pingpong: lock not acquired");
    // Held from here on: wait_for() lets it go while the parent sleeps.
    auto round_trip = [&] {
      t->turn = 1;
      cond.notify();
      bool ok = cond.wait_for([&t] { return t->turn.load() == 0; }, kTimeout);
      dog.tick();
      return ok;
    };
    bool ok = true;
    for (int i = 0; i < kWarmup && ok; ++i) ok = round_trip();
    if (ok) {
      for (auto _ : state) {
        if (!round_trip()) {
          ok = false;
          break;
        }
      }
    }
    if (!ok) {
      cond.release();
      return fail(state, "condition_pingpong: no answer within the timeout" + child.status());
    }
    t->stop = 1;
    t->turn = 1;
    cond.notify();
    cond.release();
    if (auto err = child.finish()) fail(state, *err);
  } catch (const std::exception& e) {
    fail(state, e.what());
  }
}

// ---- the raw calls ------------------------------------------------------------------------------

void raw_sem_pshared_wait_post(benchmark::State& state) {
  SharedMap<sem_t> s;
  if (::sem_init(s.get(), 1, 1) != 0) return fail(state, std::string("sem_init: ") + std::strerror(errno));
  for (auto _ : state) {
    ::sem_wait(s.get());
    ::sem_post(s.get());
  }
  ::sem_destroy(s.get());
}

void raw_sem_open_unlink_close(benchmark::State& state) {
  const std::string name = "/mp-bench-" + std::to_string(::getpid());
  ::sem_unlink(name.c_str());  // a leftover of a killed run
  for (auto _ : state) {
    sem_t* s = ::sem_open(name.c_str(), O_CREAT | O_EXCL, 0600, 1);
    if (s == SEM_FAILED) return fail(state, "sem_open(" + name + "): " + std::strerror(errno));
    ::sem_unlink(name.c_str());
    ::sem_close(s);
  }
}

// sem_wait with a kTimeout deadline (CLOCK_REALTIME, as sem_timedwait takes); false on timeout.
bool sem_wait_for(sem_t* s) {
  timespec d;
  ::clock_gettime(CLOCK_REALTIME, &d);
  d.tv_sec += static_cast<time_t>(kTimeout.count());
  for (;;) {
    if (::sem_timedwait(s, &d) == 0) return true;
    if (errno != EINTR) return false;
  }
}

struct SemPair {
  sem_t ping, pong;
  std::atomic<int> stop{0};
};

void raw_sem_pingpong(benchmark::State& state, Placement pl) {
  ParentPin pin(pl.parent);
  SharedMap<SemPair> sp;
  if (::sem_init(&sp->ping, 1, 0) != 0 || ::sem_init(&sp->pong, 1, 0) != 0)
    return fail(state, std::string("sem_init: ") + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid == 0) {
    bool ok = false;
    try {
      child_setup(pl.child);
      for (;;) {  // as limits.c: wait for ping, answer pong
        if (!sem_wait_for(&sp->ping)) break;
        if (sp->stop.load()) {
          ok = true;
          break;
        }
        ::sem_post(&sp->pong);
      }
    } catch (...) {
    }
    ::_exit(ok ? 0 : 1);
  }
  if (pid < 0) return fail(state, std::string("fork: ") + std::strerror(errno));
  auto round_trip = [&] {
    ::sem_post(&sp->ping);
    return sem_wait_for(&sp->pong);
  };
  bool ok = true;
  for (int i = 0; i < kWarmup && ok; ++i) ok = round_trip();
  if (ok) {
    for (auto _ : state) {
      if (!round_trip()) {
        ok = false;
        break;
      }
    }
  }
  if (ok) {
    sp->stop = 1;
    ::sem_post(&sp->ping);
  } else {
    ::kill(pid, SIGKILL);
  }
  int status = 0;
  pid_t r;
  do r = ::waitpid(pid, &status, 0);
  while (r < 0 && errno == EINTR);
  if (!ok) fail(state, "raw_sem_pingpong: no answer from the child within the timeout");
  else if (r != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail(state, "raw_sem_pingpong: child status " + std::to_string(status));
  ::sem_destroy(&sp->ping);
  ::sem_destroy(&sp->pong);
}
#endif

// ---- registration -------------------------------------------------------------------------------

void register_all() {
#if MP_BENCH_HAVE_LINUX
  // The raw cases first, before this process has made any object of the library.
  benchmark::RegisterBenchmark("raw_sem_pshared_wait_post", raw_sem_pshared_wait_post)
      ->UseRealTime()
      ->Unit(benchmark::kNanosecond);
  benchmark::RegisterBenchmark("raw_sem_open_unlink_close", raw_sem_open_unlink_close)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
#endif
  benchmark::RegisterBenchmark("lock_acquire_release", lock_acquire_release)->UseRealTime()->Unit(benchmark::kNanosecond);
  benchmark::RegisterBenchmark("rlock_acquire_release", rlock_acquire_release)->UseRealTime()->Unit(benchmark::kNanosecond);
  benchmark::RegisterBenchmark("semaphore_acquire_release", semaphore_acquire_release)
      ->UseRealTime()
      ->Unit(benchmark::kNanosecond);
  benchmark::RegisterBenchmark("event_set_clear", event_set_clear)->UseRealTime()->Unit(benchmark::kNanosecond);
  benchmark::RegisterBenchmark("lock_create_destroy", lock_create_destroy)->UseRealTime()->Unit(benchmark::kMicrosecond);
#if MP_BENCH_HAVE_LINUX
  for (const Placement& pl : kPlacements) {
    if (!cpu_allowed(pl.parent) || !cpu_allowed(pl.child)) continue;  // e.g. one CPU: no cross_cpu
    const std::string suffix = std::string("/") + pl.name;
    benchmark::RegisterBenchmark(("raw_sem_pingpong" + suffix).c_str(), raw_sem_pingpong, pl)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("lock_pingpong" + suffix).c_str(), lock_pingpong, pl)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("condition_pingpong" + suffix).c_str(), condition_pingpong, pl)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
#endif
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--exit-now") == 0) return 0;
  // Children started by spawn/forkserver run their work here and never return (this program only
  // starts fork children, but keeps the convention).
  mp::freeze_support();
#if MP_BENCH_HAVE_LINUX
  g_bench_pid = ::getpid();
#endif

  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
