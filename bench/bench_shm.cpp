// bench_shm - what mp's shared memory costs (SharedMemory, Value, RawArray), beside the raw system
// calls it is built on. Run it alone (Google Benchmark flags apply) or through bench/run.py, which
// puts the figures beside CPython's multiprocessing (py_baseline.py, bench/py_cases.py) and the
// limits of this machine (limits.c).
//
// Named segments, in this process (wall-clock time per iteration, us):
//   shm_create                  mp::SharedMemory(std::nullopt, true, 1 MiB); close(); unlink()
//                               (tracked, as CPython's: a register and an unregister message to
//                               the resource tracker, started before the timed loop)
//   shm_create_untracked        the same with track=false: no REGISTER message, but unlink() still
//                               sends UNREGISTER once this process has a tracker (as CPython's)
//   shm_attach                  mp::SharedMemory(name) of a 1 MiB segment; close()
//   raw_shm_create_map_unmap_unlink   shm_open(O_CREAT|O_EXCL|O_RDWR); ftruncate(1 MiB); mmap;
//                               munmap; close; shm_unlink (= limits.c shm_open
//                               create_map_unmap_unlink_1MiB, call for call: one fixed name)
//   raw_shm_create_map_unmap_unlink/fresh_name   the same calls under a new random name each time
//                               (getrandom()), as mp and CPython name every segment afresh
//   raw_shm_attach_map_unmap    shm_open(O_RDWR); fstat; mmap(st_size); munmap; close
//                               (= limits.c shm_open attach_map_unmap_1MiB)
//
// A counter incremented by two processes at once (fork children; time per increment, ns = the
// batch's wall-clock time / (2 x --increments)). Each batch forks two children, which wait until
// both are ready; the clock starts when the parent lets them go and stops at the later child's
// last increment (CLOCK_MONOTONIC, read by the children). Unpinned: on a 2-CPU machine the two
// children have one CPU each.
//   value_increment_2proc       mp::Value<int> (fork context; its lock is an RLock, as CPython's),
//                               passed to each child as a Process argument:
//                               { std::lock_guard g(v.get_lock()); v.value(v.value() + 1); }
//                               (value() and value(x) take the RLock again, recursively, as
//                               CPython's `with v.get_lock(): v.value += 1` does)
//   raw_sem_increment_2proc     fork(); one process-shared sem_t and an int in an anonymous shared
//                               mapping: sem_timedwait; ++x; sem_post (the deadline is computed once
//                               per batch: the same fast path as sem_wait)
//   raw_mutex_increment_2proc   the same with a process-shared pthread_mutex_t
//                               (pthread_mutex_timedlock; ++x; pthread_mutex_unlock)
//
// Handing 256 MiB (--handoff_mib) to a child (bytes_per_second, shown as GB/s; one iteration =
// one handoff, timed from its start in the parent to the child's answer back in the parent). In
// every variant the data starts in the parent's private buffer (a std::vector, pattern i % 251,
// warm), the child is one fork child started (and warmed up with one untimed handoff, so its
// page tables are filled) before the timed loop, and the child reads every byte and adds them up
// (sum_bytes below: psadbw, ~ memory bandwidth); the parent checks the sum. Unpinned.
//   handoff_256MiB/shm          mp::RawArray<std::byte>(256 MiB) inherited by the child: the parent
//                               memcpy()s its bytes into the array and sends a 2-byte "go" over an
//                               mp::Pipe(); the child sums the array in place and sends the 8-byte
//                               sum back
//   handoff_256MiB/pipe         mp::Pipe(): parent send_bytes(256 MiB); child recv_bytes() (a new
//                               vector each time, as CPython's recv_bytes makes a new bytes), sums
//                               it, sends the sum back
//   handoff_256MiB/pipe_into    the same with recv_bytes_into() a buffer the child reuses
//   raw_handoff_256MiB/shm      fork(); mmap(MAP_SHARED|MAP_ANONYMOUS) 256 MiB: memcpy in, one
//                               byte over a socketpair, the child sums, writes the sum back
//   raw_handoff_256MiB/socketpair  fork(); write() of an 8-byte length and the 256 MiB on a
//                               socketpair, the child read()s into a buffer it reuses, sums,
//                               writes the sum back
//   consume_256MiB              the child's work alone: sum_bytes over the warm private buffer, in
//                               this process (no handoff): the ceiling of every figure above
//
// Robustness: every wait has a timeout (kTimeout): the children poll() their connection (or
// sem_timedwait / pthread_mutex_timedlock) before each wait, the parent polls for each answer and
// joins every child with a timeout, killing it if it is still there. mp's Value children take the
// lock with lock_guard (no timeout, as issue 5's code); a child that dies holding it hands it to
// the next taker (owner-died), and the parent's join timeout bounds the rest. Raw children die with
// this program (PR_SET_PDEATHSIG). Nothing is left in /dev/shm: the named segments are unlinked
// on every way out, the heap and raw mappings have no name.
//
// Own flags, taken out before Google Benchmark sees the command line:
//   --increments=N   increments per child per batch (default 1000000; bench/run.py --quick: 200000)
//   --handoff_mib=N  the handoff's size (default 256; the benchmarks keep the name 256MiB)
//   --exit-now       return at once (as bench_process)
#include <mp/mp.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#if __has_include(<semaphore.h>) && __has_include(<sys/mman.h>) && __has_include(<sys/wait.h>) && \
    __has_include(<unistd.h>) && defined(__linux__)
#define MP_BENCH_HAVE_LINUX 1
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#else
#define MP_BENCH_HAVE_LINUX 0
#endif

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace {

constexpr mp::Seconds kTimeout{60};   // any single wait
constexpr std::size_t kShmSize = std::size_t{1} << 20;
constexpr int kIncrementBatches = 3;  // batches (benchmark iterations) per repetition

std::size_t g_handoff_bytes = std::size_t{256} << 20;
long g_increments = 1000000;  // per child per batch

void fail(benchmark::State& state, const std::string& why) { state.SkipWithError(why.c_str()); }

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// ---- the mp child -------------------------------------------------------------------------------

// Owns the child (fork context): on every way out (an error included) it ends it and reaps it.
class Child {
 public:
  template <class F, class... A>
  explicit Child(F&& target, A&&... args)
      : p_(mp::get_context("fork").Process(std::forward<F>(target), std::forward<A>(args)...)) {
    p_.start();
  }
  ~Child() {
    try {
      if (!finished_) p_.kill();  // a way out on an error: do not wait for a child that may wait for us
      p_.join(kTimeout);
    } catch (...) {
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
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
  // Waits for the end (kTimeout); an error message unless the exit code is 0.
  std::optional<std::string> finish() {
    finished_ = p_.join(kTimeout);  // still running: the destructor kills it
    auto code = p_.exitcode();
    if (code == 0) return std::nullopt;
    return "child exit code " + (code ? std::to_string(*code) : std::string("none (still running)"));
  }

 private:
  mp::Process p_;
  bool finished_ = false;
};

// ---- named segments -----------------------------------------------------------------------------

void shm_create(benchmark::State& state, bool track) {
  try {
    {  // the tracker's start (track=true), libsodium's set-up: not in the timed loop
      mp::SharedMemory warm(std::nullopt, true, kShmSize, track);
      warm.close();
      warm.unlink();
    }
    for (auto _ : state) {
      mp::SharedMemory s(std::nullopt, true, kShmSize, track);
      s.close();
      s.unlink();
    }
  } catch (const std::exception& e) {
    fail(state, e.what());
  }
}

void shm_attach(benchmark::State& state) {
  try {
    mp::SharedMemory base(std::nullopt, true, kShmSize);
    struct Cleanup {  // unlinked on every way out
      mp::SharedMemory& s;
      ~Cleanup() {
        try {
          s.close();
          s.unlink();
        } catch (...) {
        }
      }
    } cleanup{base};
    const std::string name = base.name();
    {
      mp::SharedMemory warm(name);
      warm.close();
    }
    for (auto _ : state) {
      mp::SharedMemory s(name);
      s.close();
    }
  } catch (const std::exception& e) {
    fail(state, e.what());
  }
}

#if MP_BENCH_HAVE_LINUX
std::string raw_name() { return "/mp-bench-shm-" + std::to_string(::getpid()); }

// fresh_name: a new name per iteration, "/mp-bench-" and 20 random hex digits from getrandom(), as
// mp and CPython make a new unguessable name for each segment (the fixed name of limits.c finds
// the directory entry it removed one iteration before).
void raw_shm_create_map_unmap_unlink(benchmark::State& state, bool fresh_name) {
  std::string name = raw_name();
  ::shm_unlink(name.c_str());  // a leftover of a killed run
  for (auto _ : state) {       // limits.c's calls, in its order
    if (fresh_name) {
      unsigned char r[10];
      if (::getrandom(r, sizeof r, 0) != static_cast<ssize_t>(sizeof r))
        return fail(state, std::string("getrandom: ") + std::strerror(errno));
      char hex[2 * sizeof r + 1];
      for (std::size_t i = 0; i < sizeof r; ++i) std::snprintf(hex + 2 * i, 3, "%02x", r[i]);
      name.assign("/mp-bench-").append(hex);
    }
    int fd = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) return fail(state, "shm_open(" + name + "): " + std::strerror(errno));
    if (::ftruncate(fd, static_cast<off_t>(kShmSize)) != 0) {
      const int err = errno;
      ::close(fd);
      ::shm_unlink(name.c_str());
      return fail(state, std::string("ftruncate: ") + std::strerror(err));
    }
    void* p = ::mmap(nullptr, kShmSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      ::shm_unlink(name.c_str());
      return fail(state, std::string("mmap: ") + std::strerror(err));
    }
    ::munmap(p, kShmSize);
    ::close(fd);
    ::shm_unlink(name.c_str());
  }
}

void raw_shm_attach_map_unmap(benchmark::State& state) {
  const std::string name = raw_name();
  ::shm_unlink(name.c_str());
  int fd0 = ::shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd0 < 0) return fail(state, "shm_open(" + name + "): " + std::strerror(errno));
  if (::ftruncate(fd0, static_cast<off_t>(kShmSize)) != 0) {
    const int err = errno;
    ::close(fd0);
    ::shm_unlink(name.c_str());
    return fail(state, std::string("ftruncate: ") + std::strerror(err));
  }
  for (auto _ : state) {  // attach by name, as limits.c (and SharedMemory(name)) does
    struct stat st;
    int fd = ::shm_open(name.c_str(), O_RDWR, 0600);
    if (fd < 0 || ::fstat(fd, &st) != 0) {
      fail(state, std::string("shm_open/fstat (attach): ") + std::strerror(errno));
      if (fd >= 0) ::close(fd);
      break;
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      fail(state, std::string("mmap: ") + std::strerror(errno));
      ::close(fd);
      break;
    }
    ::munmap(p, size);
    ::close(fd);
  }
  ::close(fd0);
  ::shm_unlink(name.c_str());
}

// ---- shared state of the raw cases --------------------------------------------------------------

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

pid_t g_bench_pid = -1;  // this program's process: the parent of every child

// A raw child's first act: it dies with the parent.
void raw_child_setup() {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != g_bench_pid) ::_exit(1);  // the parent went before the signal was armed
}

// The absolute CLOCK_REALTIME deadline kTimeout from now (as sem_timedwait and
// pthread_mutex_timedlock take it).
timespec realtime_deadline() {
  timespec d;
  ::clock_gettime(CLOCK_REALTIME, &d);
  d.tv_sec += static_cast<time_t>(kTimeout.count());
  return d;
}

// Reaps `pid` within kTimeout (else kills it, and reaps it); an error message unless it exited 0.
std::optional<std::string> reap(pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return std::string("waitpid: ") + std::strerror(errno);
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return "child " + std::to_string(pid) + " did not end within the timeout (killed)";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "raw child status " + std::to_string(status);
  return std::nullopt;
}
#endif

// ---- two processes incrementing one counter ------------------------------------------------------

void value_increment_2proc(benchmark::State& state) {
  try {
    mp::Context& fork = mp::get_context("fork");
    mp::Value<int> v(0, true, &fork);
    mp::RawArray<std::int64_t> ends(2);  // each child's end, ns
    const long n = g_increments;
    for (auto _ : state) {
      v.value(0);
      mp::Semaphore ready = fork.Semaphore(0);
      mp::Event go = fork.Event();
      // The Value goes to each child as a Process argument, as CPython's args=(v, ...).
      auto body = [ready, go, ends, n](mp::Value<int> counter, int idx) mutable {
        ready.release();
        if (!go.wait(kTimeout)) throw std::runtime_error("value_increment_2proc child: no go within the timeout");
        for (long i = 0; i < n; ++i) {
          std::lock_guard g(counter.get_lock());
          counter.value(counter.value() + 1);
        }
        ends[static_cast<std::size_t>(idx)] = now_ns();
      };
      Child a(body, v, 0), b(body, v, 1);
      bool ok = ready.acquire(true, kTimeout) && ready.acquire(true, kTimeout);
      if (!ok) {
        fail(state, "value_increment_2proc: the children did not start" + a.status() + b.status());
        break;
      }
      const std::int64_t t0 = now_ns();
      go.set();
      auto ea = a.finish();
      auto eb = b.finish();
      if (ea || eb) {
        fail(state, "value_increment_2proc: " + (ea ? *ea : *eb));
        break;
      }
      if (v.value() != 2 * n) {
        fail(state, "value_increment_2proc: the counter is " + std::to_string(v.value()) + ", not " +
                        std::to_string(2 * n));
        break;
      }
      const std::int64_t end = std::max(ends[0], ends[1]);
      state.SetIterationTime(static_cast<double>(end - t0) * 1e-9 / static_cast<double>(2 * n));
    }
    state.counters["increments_per_batch"] = static_cast<double>(2 * n);
  } catch (const std::exception& e) {
    fail(state, e.what());
  }
}

#if MP_BENCH_HAVE_LINUX
struct EndTimes {
  std::atomic<std::int64_t> end_ns[2];
};

// The batch's time per increment, from the go signal at t0 to the later child's end.
double per_increment(std::int64_t t0, const EndTimes& e, long n) {
  const std::int64_t end = std::max(e.end_ns[0].load(), e.end_ns[1].load());
  return static_cast<double>(end - t0) * 1e-9 / static_cast<double>(2 * n);
}

// The raw locks: a process-shared sem_t or pthread_mutex_t, taken with a deadline.
struct RawSem {
  sem_t s;
  bool init() { return ::sem_init(&s, 1, 1) == 0; }
  void destroy() { ::sem_destroy(&s); }
  bool lock(const timespec& deadline) {
    for (;;) {
      if (::sem_timedwait(&s, &deadline) == 0) return true;
      if (errno != EINTR) return false;
    }
  }
  void unlock() { ::sem_post(&s); }
};

struct RawMutex {
  pthread_mutex_t m;
  bool init() {
    pthread_mutexattr_t a;
    if (::pthread_mutexattr_init(&a) != 0) return false;
    ::pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    bool ok = ::pthread_mutex_init(&m, &a) == 0;
    ::pthread_mutexattr_destroy(&a);
    return ok;
  }
  void destroy() { ::pthread_mutex_destroy(&m); }
  bool lock(const timespec& deadline) { return ::pthread_mutex_timedlock(&m, &deadline) == 0; }
  void unlock() { ::pthread_mutex_unlock(&m); }
};

template <class L>
struct RawCounter {
  L lock;
  sem_t go;
  std::atomic<int> ready{0};
  int counter = 0;
  EndTimes ends{};
};

template <class L>
void raw_increment_2proc(benchmark::State& state) {
  SharedMap<RawCounter<L>> sh;
  if (!sh->lock.init() || ::sem_init(&sh->go, 1, 0) != 0) return fail(state, std::string("init: ") + std::strerror(errno));
  const long n = g_increments;
  for (auto _ : state) {
    sh->counter = 0;
    sh->ready = 0;
    pid_t pids[2] = {-1, -1};
    for (int idx = 0; idx < 2; ++idx) {
      pids[idx] = ::fork();
      if (pids[idx] == 0) {
        raw_child_setup();
        const timespec deadline = realtime_deadline();
        sh->ready.fetch_add(1);
        while (::sem_timedwait(&sh->go, &deadline) != 0) {
          if (errno != EINTR) ::_exit(2);
        }
        for (long i = 0; i < n; ++i) {
          if (!sh->lock.lock(deadline)) ::_exit(3);
          ++sh->counter;
          sh->lock.unlock();
        }
        sh->ends.end_ns[idx] = now_ns();
        ::_exit(0);
      }
      if (pids[idx] < 0) break;
    }
    std::optional<std::string> err;
    if (pids[0] < 0 || pids[1] < 0) err = std::string("fork: ") + std::strerror(errno);
    const auto deadline = std::chrono::steady_clock::now() + kTimeout;
    while (!err && sh->ready.load() < 2) {
      if (std::chrono::steady_clock::now() > deadline) err = "the children did not start within the timeout";
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    const std::int64_t t0 = now_ns();
    if (!err) {
      ::sem_post(&sh->go);
      ::sem_post(&sh->go);
    } else {
      for (pid_t p : pids)
        if (p > 0) ::kill(p, SIGKILL);
    }
    for (pid_t p : pids) {
      if (p <= 0) continue;
      auto e = reap(p);
      if (e && !err) err = e;
    }
    if (!err && sh->counter != 2 * n) err = "the counter is " + std::to_string(sh->counter);
    if (err) {
      fail(state, "raw increment: " + *err);
      break;
    }
    state.SetIterationTime(per_increment(t0, sh->ends, n));
  }
  state.counters["increments_per_batch"] = static_cast<double>(2 * n);
  sh->lock.destroy();
  ::sem_destroy(&sh->go);
}
#endif

// ---- handing 256 MiB to a child -----------------------------------------------------------------

// The child's work: reads every byte and adds them up, at memory bandwidth (~ memchr's speed, the
// kernel of py_cases.py's child): SSE2's psadbw sums 16 bytes at a time; elsewhere eight bytes at
// a time, the byte lanes summed in 16-bit fields (128 words of 2 x 255 fit), which -O2 does not
// leave to a slow byte loop either.
std::uint64_t sum_bytes(const std::byte* p, std::size_t n) {
  std::uint64_t sum = 0;
  std::size_t i = 0;
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  __m128i a0 = zero, a1 = zero, a2 = zero, a3 = zero;
  for (; n - i >= 64; i += 64) {
    a0 = _mm_add_epi64(a0, _mm_sad_epu8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i)), zero));
    a1 = _mm_add_epi64(a1, _mm_sad_epu8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 16)), zero));
    a2 = _mm_add_epi64(a2, _mm_sad_epu8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 32)), zero));
    a3 = _mm_add_epi64(a3, _mm_sad_epu8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 48)), zero));
  }
  const __m128i a = _mm_add_epi64(_mm_add_epi64(a0, a1), _mm_add_epi64(a2, a3));
  std::uint64_t lanes[2];
  std::memcpy(lanes, &a, sizeof lanes);
  sum = lanes[0] + lanes[1];
#endif
  constexpr std::uint64_t kLow = 0x00FF00FF00FF00FFull;
  while (n - i >= 8) {
    const std::size_t words = std::min<std::size_t>((n - i) / 8, 128);
    std::uint64_t acc = 0;
    for (std::size_t w = 0; w < words; ++w, i += 8) {
      std::uint64_t x;
      std::memcpy(&x, p + i, 8);
      acc += (x & kLow) + ((x >> 8) & kLow);
    }
    sum += (acc & 0xFFFF) + ((acc >> 16) & 0xFFFF) + ((acc >> 32) & 0xFFFF) + (acc >> 48);
  }
  for (; i < n; ++i) sum += static_cast<std::uint64_t>(p[i]);
  return sum;
}

// The parent's private bytes, warm: i % 251 (never 0xFF: py_cases.py's child scans for it).
struct Source {
  std::vector<std::byte> bytes;
  std::uint64_t sum = 0;
};
const Source& source() {
  static const Source s = [] {
    Source out;
    out.bytes.resize(g_handoff_bytes);
    for (std::size_t i = 0; i < out.bytes.size(); ++i) out.bytes[i] = static_cast<std::byte>(i % 251);
    out.sum = sum_bytes(out.bytes.data(), out.bytes.size());
    return out;
  }();
  return s;
}

std::span<const std::byte> as_span(const std::uint64_t& x) { return {reinterpret_cast<const std::byte*>(&x), sizeof x}; }

// The child's answer (the sum), within kTimeout; an error message otherwise.
std::optional<std::string> wait_sum(mp::Connection& conn, std::uint64_t expect) {
  if (!conn.poll(kTimeout)) return std::string("no answer from the child within the timeout");
  std::uint64_t got = 0;
  if (conn.recv_bytes_into(std::span<std::byte>(reinterpret_cast<std::byte*>(&got), sizeof got)) != sizeof got)
    return std::string("a short answer");
  if (got != expect) return "the child's sum is " + std::to_string(got) + ", not " + std::to_string(expect);
  return std::nullopt;
}

// Runs handoff() once untimed, then once per iteration; bytes_per_second over the timed ones.
template <class H>
void handoff_loop(benchmark::State& state, H&& handoff) {
  if (auto err = handoff()) return fail(state, *err);
  for (auto _ : state) {
    if (auto err = handoff()) {
      fail(state, *err);
      break;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(g_handoff_bytes));
}

void handoff_shm(benchmark::State& state) {
  try {
    const Source& src = source();
    const std::size_t n = src.bytes.size();
    mp::RawArray<std::byte> arr(n);
    mp::Connection conn, child_conn;
    std::tie(conn, child_conn) = mp::Pipe();
    Child child([arr, c = child_conn]() mutable {
      std::byte msg[16];
      for (;;) {
        if (!c.poll(kTimeout)) throw std::runtime_error("handoff child: no request within the timeout");
        if (c.recv_bytes_into(msg) == 0) return;  // the end
        const std::uint64_t s = sum_bytes(arr.span().data(), arr.size());
        c.send_bytes(as_span(s));
      }
    });
    child_conn.close();  // only the child holds it now: its death is EOF here
    const std::span<std::byte> dst = arr.span();
    handoff_loop(state, [&]() -> std::optional<std::string> {
      std::memcpy(dst.data(), src.bytes.data(), n);
      conn.send_bytes(std::string_view("go"));
      return wait_sum(conn, src.sum);
    });
    conn.send_bytes(std::string_view{});
    if (auto err = child.finish()) fail(state, *err);
  } catch (const std::exception& e) {
    fail(state, e.what());
  }
}

void handoff_pipe(benchmark::State& state, bool into) {
  try {
    const Source& src = source();
    const std::size_t n = src.bytes.size();
    mp::Connection conn, child_conn;
    std::tie(conn, child_conn) = mp::Pipe();
    Child child([c = child_conn, into, n]() mutable {
      std::vector<std::byte> buf;
      if (into) buf.assign(n, std::byte{0});  // reused; warm after the first message
      for (;;) {
        if (!c.poll(kTimeout)) throw std::runtime_error("handoff child: no message within the timeout");
        std::uint64_t s = 0;
        if (into) {
          const std::size_t got = c.recv_bytes_into(buf);
          if (got == 0) return;
          s = sum_bytes(buf.data(), got);
        } else {
          const std::vector<std::byte> m = c.recv_bytes();
          if (m.empty()) return;
          s = sum_bytes(m.data(), m.size());
        }
        c.send_bytes(as_span(s));
      }
    });
    child_conn.close();
    handoff_loop(state, [&]() -> std::optional<std::string> {
      conn.send_bytes(src.bytes);
      return wait_sum(conn, src.sum);
    });
    conn.send_bytes(std::string_view{});
    if (auto err = child.finish()) fail(state, *err);
  } catch (const std::exception& e) {
    fail(state, e.what());
  }
}

void consume(benchmark::State& state) {
  const Source& src = source();
  for (auto _ : state) {
    std::uint64_t s = sum_bytes(src.bytes.data(), src.bytes.size());
    benchmark::DoNotOptimize(s);
    if (s != src.sum) {
      fail(state, "wrong sum");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(g_handoff_bytes));
}

#if MP_BENCH_HAVE_LINUX
bool read_full(int fd, void* p, std::size_t n) {
  for (std::size_t got = 0; got < n;) {
    ssize_t r = ::read(fd, static_cast<char*>(p) + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}
bool write_full(int fd, const void* p, std::size_t n) {
  for (std::size_t put = 0; put < n;) {
    ssize_t r = ::write(fd, static_cast<const char*>(p) + put, n - put);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return false;
    put += static_cast<std::size_t>(r);
  }
  return true;
}
// Whether fd is readable (or at EOF) within kTimeout.
bool wait_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  const auto deadline = std::chrono::steady_clock::now() + kTimeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

// fork(): the child runs body(fd) on its end of a socketpair and _exit()s 0 if it returned true;
// the parent gets its own end in `parent_fd` (-1 on an error).
template <class Body>
pid_t raw_fork(int& parent_fd, Body body) {
  int sv[2];
  parent_fd = -1;
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(sv[0]);
    bool ok = false;
    try {
      raw_child_setup();
      ok = body(sv[1]);
    } catch (...) {
    }
    ::_exit(ok ? 0 : 1);
  }
  ::close(sv[1]);
  if (pid < 0) ::close(sv[0]);
  else parent_fd = sv[0];
  return pid;
}

// The parent's side of a raw handoff: the answer within kTimeout.
std::optional<std::string> raw_wait_sum(int fd, std::uint64_t expect) {
  std::uint64_t got = 0;
  if (!wait_readable(fd)) return std::string("no answer from the raw child within the timeout");
  if (!read_full(fd, &got, sizeof got)) return std::string("the raw child went away");
  if (got != expect) return "the raw child's sum is " + std::to_string(got);
  return std::nullopt;
}

void raw_handoff_shm(benchmark::State& state) {
  const Source& src = source();
  const std::size_t n = src.bytes.size();
  void* mem = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return fail(state, std::string("mmap: ") + std::strerror(errno));
  auto* shared = static_cast<std::byte*>(mem);
  std::memset(shared, 0, n);  // as the heap's allocate() zero-fills the RawArray
  int fd = -1;
  pid_t pid = raw_fork(fd, [shared, n](int cfd) {
    for (;;) {
      char go;
      if (!wait_readable(cfd)) return false;
      ssize_t r = ::read(cfd, &go, 1);
      if (r == 0) return true;  // the end
      if (r < 0) return false;
      const std::uint64_t s = sum_bytes(shared, n);
      if (!write_full(cfd, &s, sizeof s)) return false;
    }
  });
  if (pid < 0) {
    ::munmap(mem, n);
    return fail(state, std::string("socketpair/fork: ") + std::strerror(errno));
  }
  handoff_loop(state, [&]() -> std::optional<std::string> {
    std::memcpy(shared, src.bytes.data(), n);
    if (!write_full(fd, "g", 1)) return std::string("write: ") + std::strerror(errno);
    return raw_wait_sum(fd, src.sum);
  });
  ::close(fd);  // EOF: the child ends
  if (auto err = reap(pid)) fail(state, *err);
  ::munmap(mem, n);
}

void raw_handoff_socketpair(benchmark::State& state) {
  const Source& src = source();
  const std::size_t n = src.bytes.size();
  int fd = -1;
  pid_t pid = raw_fork(fd, [n](int cfd) {
    std::vector<std::byte> buf(n);  // reused
    for (;;) {
      std::uint64_t len = 0;
      if (!wait_readable(cfd)) return false;
      ssize_t r = ::read(cfd, &len, sizeof len);
      if (r == 0) return true;  // the end
      if (r < 0 || (static_cast<std::size_t>(r) < sizeof len &&
                    !read_full(cfd, reinterpret_cast<char*>(&len) + r, sizeof len - static_cast<std::size_t>(r))))
        return false;
      if (len > n || !read_full(cfd, buf.data(), static_cast<std::size_t>(len))) return false;
      const std::uint64_t s = sum_bytes(buf.data(), static_cast<std::size_t>(len));
      if (!write_full(cfd, &s, sizeof s)) return false;
    }
  });
  if (pid < 0) return fail(state, std::string("socketpair/fork: ") + std::strerror(errno));
  handoff_loop(state, [&]() -> std::optional<std::string> {
    const std::uint64_t len = n;
    if (!write_full(fd, &len, sizeof len) || !write_full(fd, src.bytes.data(), n))
      return std::string("write: ") + std::strerror(errno);
    return raw_wait_sum(fd, src.sum);
  });
  ::close(fd);
  if (auto err = reap(pid)) fail(state, *err);
}
#endif

// ---- registration -------------------------------------------------------------------------------

void register_all() {
#if MP_BENCH_HAVE_LINUX
  // The raw cases first, before this process has made any object of the library.
  benchmark::RegisterBenchmark("raw_shm_create_map_unmap_unlink", raw_shm_create_map_unmap_unlink, false)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("raw_shm_create_map_unmap_unlink/fresh_name", raw_shm_create_map_unmap_unlink, true)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("raw_shm_attach_map_unmap", raw_shm_attach_map_unmap)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("raw_sem_increment_2proc", raw_increment_2proc<RawSem>)
      ->UseManualTime()
      ->Iterations(kIncrementBatches)
      ->Unit(benchmark::kNanosecond);
  benchmark::RegisterBenchmark("raw_mutex_increment_2proc", raw_increment_2proc<RawMutex>)
      ->UseManualTime()
      ->Iterations(kIncrementBatches)
      ->Unit(benchmark::kNanosecond);
  benchmark::RegisterBenchmark("raw_handoff_256MiB/shm", raw_handoff_shm)->UseRealTime()->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("raw_handoff_256MiB/socketpair", raw_handoff_socketpair)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
#endif
  benchmark::RegisterBenchmark("consume_256MiB", consume)->UseRealTime()->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("shm_create", shm_create, true)->UseRealTime()->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("shm_create_untracked", shm_create, false)->UseRealTime()->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("shm_attach", shm_attach)->UseRealTime()->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("value_increment_2proc", value_increment_2proc)
      ->UseManualTime()
      ->Iterations(kIncrementBatches)
      ->Unit(benchmark::kNanosecond);
  benchmark::RegisterBenchmark("handoff_256MiB/shm", handoff_shm)->UseRealTime()->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("handoff_256MiB/pipe", handoff_pipe, false)->UseRealTime()->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("handoff_256MiB/pipe_into", handoff_pipe, true)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

bool take_flag(const char* arg, const char* flag, long& value) {
  const std::size_t k = std::strlen(flag);
  if (std::strncmp(arg, flag, k) != 0) return false;
  value = std::strtol(arg + k, nullptr, 10);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--exit-now") == 0) return 0;
  // Children started by spawn/forkserver run their work here and never return (this program only
  // starts fork children, but keeps the convention); the resource tracker starts from here too.
  mp::freeze_support();
#if MP_BENCH_HAVE_LINUX
  g_bench_pid = ::getpid();
#endif

  // Own flags out of the way of Google Benchmark's.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    long v = 0;
    if (take_flag(argv[i], "--increments=", v)) {
      if (v <= 0) {
        std::fprintf(stderr, "bench_shm: bad %s\n", argv[i]);
        return 1;
      }
      g_increments = v;
    } else if (take_flag(argv[i], "--handoff_mib=", v)) {
      if (v <= 0) {
        std::fprintf(stderr, "bench_shm: bad %s\n", argv[i]);
        return 1;
      }
      g_handoff_bytes = static_cast<std::size_t>(v) << 20;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;

  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
