// bench_queue - what an item through an mp::Queue costs, beside the raw pipe calls CPython's Queue is
// built on. Run it alone (Google Benchmark flags apply) or through bench/run.py, which puts the
// figures beside CPython's multiprocessing.Queue (py_baseline.py queue_throughput, bench/py_cases.py
// queue_pingpong) and the limits of this machine (limits.c pipe_framed_msgs, pipe_pingpong).
//
// Every case runs in three placements, the last part of its name:
//   unpinned   the scheduler decides;
//   same_cpu   parent and child both pinned to CPU 0;
//   cross_cpu  parent on CPU 0, child on CPU 1.
// The child is an mp::Process started with the fork context (raw cases: fork()); it pins itself
// first.
//
// Throughput, producer child -> consumer parent (as py_baseline.py's queue_throughput). One
// benchmark iteration is one run, of kRuns per repetition: a new Queue and a go Event; the producer
// child is started, waits for go, put()s N items and a sentinel; the parent sleeps 50 ms, takes the
// time, sets go and get()s until the sentinel; the run's time ends there (the join is not timed).
// Counter msg_per_s: the median of the runs' N / time (py_baseline.py: median of 3 runs); the
// manual time per iteration is the mean run time.
//   queue_throughput/int/<pl>    mp::Queue<int>, the items i % 256, sentinel -1; N = --int_msgs
//                                (default 200000, CPython's figure; bench/run.py --quick: 20000)
//   queue_throughput/4KiB/<pl>   mp::Queue<std::vector<std::byte>>, the same 4096-byte vector put
//                                each time (CPython's b"x" * 4096), an empty one as sentinel;
//                                N = --bytes_msgs (default 100000; quick 10000)
//   raw_framed_pipe/{8B,4KiB}/<pl>   fork(); one pipe; the child write()s N messages, each a 4-byte
//                                length and the payload in one write(); the parent read()s the
//                                length, then the payload (= limits.c pipe_framed_msgs: "1 write +
//                                2 reads per msg", the Connection framing CPython's Queue uses;
//                                limits.c times the fork too, this one from go)
//
// Latency when idle (wall-clock time per iteration = one round trip, us): one item bounces between
// two processes over two queues, as the two pipes of limits.c's pipe_pingpong.
//   queue_pingpong/int/<pl>      two mp::Queue<int>: the parent put()s on `ping` and get()s from
//                                `pong`; the child get()s from `ping` and put()s it on `pong`
//   raw_pingpong/pipe64/<pl>     fork(); write/read of 64 B over two pipe()s (= limits.c pipe_pingpong)
//
// Robustness: every get() has a timeout (kTimeout) and so has the go Event's wait; a child that
// outlives its timeout fails its case (the parent kills and reaps it, joining with a timeout).
// Children die with this program (PR_SET_PDEATHSIG); a raw child's death is EOF on the parent's
// pipe, the parent's death EOF on the child's. Queues live in the shared heap: nothing is named,
// nothing is left behind.
//
// Own flags, taken out before Google Benchmark sees the command line:
//   --int_msgs=N     items per int throughput run (default 200000)
//   --bytes_msgs=N   items per 4 KiB throughput run (default 100000)
//   --exit-now       return at once (as bench_process)
#include <mp/mp.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "placement.hpp"

#if MP_BENCH_HAVE_AFFINITY && __has_include(<sys/wait.h>) && __has_include(<unistd.h>) && defined(__linux__)
#define MP_BENCH_HAVE_LINUX 1
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#else
#define MP_BENCH_HAVE_LINUX 0
#endif

namespace {

constexpr mp::Seconds kTimeout{30};  // any single wait
constexpr int kRuns = 3;             // throughput runs per repetition (the median is the figure)
constexpr int kWarmup = 200;         // ping-pong round trips before the timed loop
constexpr std::size_t kPayload = 4096;
constexpr auto kSettle = std::chrono::milliseconds(50);  // py_baseline.py: time.sleep(0.05) before go

long g_int_msgs = 200000;
long g_bytes_msgs = 100000;

void fail(benchmark::State& state, const std::string& why) { state.SkipWithError(why.c_str()); }

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> xs) {
  std::sort(xs.begin(), xs.end());
  return xs.empty() ? 0.0 : xs[xs.size() / 2];
}

using mp_bench::kPlacements;
using mp_bench::Placement;

#if MP_BENCH_HAVE_LINUX
using mp_bench::ParentPin;
pid_t g_bench_pid = -1;  // this program's process: the parent of every child

bool placement_available(const Placement& pl) { return mp_bench::cpu_allowed(pl.parent) && mp_bench::cpu_allowed(pl.child); }

// A child's first act: it dies with this program, then pins itself.
void child_setup(int cpu) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != g_bench_pid) ::_exit(1);  // the parent went before the signal was armed
  mp_bench::pin_to(cpu);
}
#else
// Without sched_setaffinity: the unpinned cases only.
struct ParentPin {
  explicit ParentPin(int) {}
};
bool placement_available(const Placement& pl) { return pl.parent < 0 && pl.child < 0; }
void child_setup(int) {}
#endif

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

// ---- throughput ---------------------------------------------------------------------------------

// The items of a run: small ints (i % 256, sentinel -1) or one 4 KiB byte vector (sentinel: empty).
template <class T>
struct Items;

template <>
struct Items<int> {
  static int stop() { return -1; }
  static bool is_stop(const int& v) { return v < 0; }
  static void produce(mp::Queue<int>& q, long n) {
    for (long i = 0; i < n; ++i) q.put(static_cast<int>(i % 256));
  }
};

template <>
struct Items<std::vector<std::byte>> {
  using T = std::vector<std::byte>;
  static T stop() { return {}; }
  static bool is_stop(const T& v) { return v.empty(); }
  static void produce(mp::Queue<T>& q, long n) {
    const T payload(kPayload, std::byte{'x'});
    for (long i = 0; i < n; ++i) q.put(payload);
  }
};

// One run: items per second, or an error message.
template <class T>
std::optional<std::string> throughput_run(const Placement& pl, long n, double& rate, double& secs) {
  mp::Context& fork = mp::get_context("fork");
  mp::Queue<T> q = fork.Queue<T>();
  mp::Event go = fork.Event();
  Child child([q, go, n, cpu = pl.child]() mutable {
    child_setup(cpu);
    if (!go.wait(kTimeout)) throw std::runtime_error("queue_throughput producer: no go within the timeout");
    Items<T>::produce(q, n);
    q.put(Items<T>::stop());
  });
  std::this_thread::sleep_for(kSettle);
  long got = 0;
  const auto t0 = Clock::now();
  go.set();
  try {
    for (;;) {
      T v = q.get(true, kTimeout);
      if (Items<T>::is_stop(v)) break;
      if constexpr (std::is_same_v<T, int>) {
        if (v > 255) return "queue_throughput: an item out of range: " + std::to_string(v);
      } else {
        if (v.size() != kPayload) return "queue_throughput: an item of " + std::to_string(v.size()) + " bytes";
      }
      ++got;
    }
  } catch (const mp::Empty&) {
    return "queue_throughput: no item within the timeout after " + std::to_string(got) + child.status();
  }
  secs = seconds_since(t0);
  if (got != n) return "queue_throughput: got " + std::to_string(got) + " items, not " + std::to_string(n);
  rate = static_cast<double>(n) / secs;
  return child.finish();
}

template <class T>
void queue_throughput(benchmark::State& state, Placement pl, const long* n_items) {
  try {
    ParentPin pin(pl.parent);
    const long n = *n_items;
    std::vector<double> rates;
    for (auto _ : state) {
      double rate = 0, secs = 0;
      if (auto err = throughput_run<T>(pl, n, rate, secs)) return fail(state, *err);
      state.SetIterationTime(secs);
      rates.push_back(rate);
    }
    state.counters["msg_per_s"] = median(rates);
    state.counters["msgs_per_run"] = static_cast<double>(n);
  } catch (const std::exception& e) {
    fail(state, e.what());
  }
}

// ---- ping-pong ----------------------------------------------------------------------------------

void queue_pingpong(benchmark::State& state, Placement pl) {
  try {
    ParentPin pin(pl.parent);
    mp::Context& fork = mp::get_context("fork");
    mp::Queue<int> ping = fork.Queue<int>(), pong = fork.Queue<int>();
    Child child([ping, pong, cpu = pl.child]() mutable {
      child_setup(cpu);
      for (;;) {
        const int v = ping.get(true, kTimeout);  // mp::Empty on a timeout: exit code 1
        if (v < 0) return;
        pong.put(v);
      }
    });
    int i = 0;
    auto round_trip = [&] {
      const int v = i++ & 255;
      ping.put(v);
      return pong.get(true, kTimeout) == v;
    };
    try {
      for (int k = 0; k < kWarmup; ++k) {
        if (!round_trip()) return fail(state, "queue_pingpong: a wrong answer");
      }
      for (auto _ : state) {
        if (!round_trip()) return fail(state, "queue_pingpong: a wrong answer");
      }
    } catch (const mp::Empty&) {
      return fail(state, "queue_pingpong: no answer within the timeout" + child.status());
    }
    ping.put(-1);
    if (auto err = child.finish()) fail(state, *err);
  } catch (const std::exception& e) {
    fail(state, e.what());
  }
}

// ---- the raw pipes ------------------------------------------------------------------------------

#if MP_BENCH_HAVE_LINUX
bool read_full(int fd, void* p, std::size_t n) {
  for (std::size_t got = 0; got < n;) {
    ssize_t r = ::read(fd, static_cast<char*>(p) + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;  // EOF: the other side is gone
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

// Two pipes: parent -> child (crd, pwr) and child -> parent (prd, cwr).
struct RawPipes {
  int prd = -1, pwr = -1, crd = -1, cwr = -1;
  bool make() {
    int a[2], b[2];
    if (::pipe2(a, O_CLOEXEC) != 0) return false;
    if (::pipe2(b, O_CLOEXEC) != 0) {
      ::close(a[0]);
      ::close(a[1]);
      return false;
    }
    crd = a[0];
    pwr = a[1];
    prd = b[0];
    cwr = b[1];
    return true;
  }
  static void close_fd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  void close_child_side() {
    close_fd(crd);
    close_fd(cwr);
  }
  void close_parent_side() {
    close_fd(prd);
    close_fd(pwr);
  }
  RawPipes() = default;
  RawPipes(const RawPipes&) = delete;
  RawPipes& operator=(const RawPipes&) = delete;
  ~RawPipes() {
    close_parent_side();
    close_child_side();
  }
};

// fork(): the child pins itself, runs body(rd, wr) and _exit()s 0 if it returned true.
template <class Body>
pid_t raw_child(RawPipes& fds, int cpu, Body body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    fds.close_parent_side();
    bool ok = false;
    try {
      child_setup(cpu);
      ok = body(fds.crd, fds.cwr);
    } catch (...) {
    }
    ::_exit(ok ? 0 : 1);
  }
  if (pid > 0) fds.close_child_side();
  return pid;
}

// Reaps `pid` within kTimeout (else kills it, and reaps it); an error message unless it exited 0.
std::optional<std::string> raw_reap(pid_t pid) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(kTimeout);
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return std::string("waitpid: ") + std::strerror(errno);
    if (Clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return "raw child " + std::to_string(pid) + " did not end within the timeout (killed)";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "raw child status " + std::to_string(status);
  return std::nullopt;
}

// limits.c's framed_stream: n messages child -> parent, each one write() of a 4-byte length (network
// order) and the payload; the parent read()s the length, then the body.
std::optional<std::string> raw_framed_run(const Placement& pl, std::size_t payload, long n, double& rate,
                                          double& secs) {
  RawPipes fds;
  if (!fds.make()) return std::string("pipe: ") + std::strerror(errno);
  pid_t pid = raw_child(fds, pl.child, [payload, n](int rd, int wr) {
    std::vector<char> buf(4 + payload, 'x');
    const std::uint32_t len = htonl(static_cast<std::uint32_t>(payload));
    std::memcpy(buf.data(), &len, 4);
    char go;
    if (!read_full(rd, &go, 1)) return false;
    for (long i = 0; i < n; ++i) {
      if (!write_full(wr, buf.data(), buf.size())) return false;
    }
    return true;
  });
  if (pid < 0) return std::string("fork: ") + std::strerror(errno);
  std::vector<char> buf(payload);
  bool ok = true;
  const auto t0 = Clock::now();
  ok = write_full(fds.pwr, "g", 1);
  for (long i = 0; i < n && ok; ++i) {
    std::uint32_t len = 0;
    ok = read_full(fds.prd, &len, 4) && ntohl(len) == payload && read_full(fds.prd, buf.data(), payload);
  }
  secs = seconds_since(t0);
  fds.close_parent_side();
  auto err = raw_reap(pid);
  if (!ok) return std::string("raw framed stream: short or wrong stream") + (err ? " (" + *err + ")" : "");
  rate = static_cast<double>(n) / secs;
  return err;
}

void raw_framed_pipe(benchmark::State& state, Placement pl, std::size_t payload, const long* n_items) {
  ParentPin pin(pl.parent);
  const long n = *n_items;
  std::vector<double> rates;
  for (auto _ : state) {
    double rate = 0, secs = 0;
    if (auto err = raw_framed_run(pl, payload, n, rate, secs)) return fail(state, *err);
    state.SetIterationTime(secs);
    rates.push_back(rate);
  }
  state.counters["msg_per_s"] = median(rates);
  state.counters["msgs_per_run"] = static_cast<double>(n);
}

// limits.c's pipe_pingpong: 64 B over two pipes, one write() and one read() per side per round trip.
void raw_pingpong_pipe(benchmark::State& state, Placement pl) {
  constexpr std::size_t kMsg = 64;
  ParentPin pin(pl.parent);
  RawPipes fds;
  if (!fds.make()) return fail(state, std::string("pipe: ") + std::strerror(errno));
  pid_t pid = raw_child(fds, pl.child, [](int rd, int wr) {
    char m[kMsg];
    for (;;) {
      ssize_t r;
      do r = ::read(rd, m, kMsg);
      while (r < 0 && errno == EINTR);
      if (r == 0) return true;  // EOF: the end
      if (r < 0 || !read_full(rd, m + r, kMsg - static_cast<std::size_t>(r)) || !write_full(wr, m, kMsg)) return false;
    }
  });
  if (pid < 0) return fail(state, std::string("fork: ") + std::strerror(errno));
  char m[kMsg] = {};
  bool ok = true;
  for (int i = 0; i < kWarmup && ok; ++i) ok = write_full(fds.pwr, m, kMsg) && read_full(fds.prd, m, kMsg);
  if (ok) {
    for (auto _ : state) {
      if (!write_full(fds.pwr, m, kMsg) || !read_full(fds.prd, m, kMsg)) {
        ok = false;
        break;
      }
    }
  }
  fds.close_parent_side();  // EOF: the child ends
  auto err = raw_reap(pid);
  if (!ok) fail(state, "raw ping-pong failed" + (err ? " (" + *err + ")" : std::string()));
  else if (err) fail(state, *err);
}
#endif

// ---- registration -------------------------------------------------------------------------------

void register_all() {
  for (const Placement& pl : kPlacements) {
    if (!placement_available(pl)) continue;  // e.g. one CPU: no cross_cpu
    const std::string suffix = std::string("/") + pl.name;
#if MP_BENCH_HAVE_LINUX
    // The raw cases first, before this process has made any object of the library.
    benchmark::RegisterBenchmark(("raw_framed_pipe/8B" + suffix).c_str(), raw_framed_pipe, pl, std::size_t{8},
                                 &g_int_msgs)
        ->UseManualTime()
        ->Iterations(kRuns)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("raw_framed_pipe/4KiB" + suffix).c_str(), raw_framed_pipe, pl, kPayload,
                                 &g_bytes_msgs)
        ->UseManualTime()
        ->Iterations(kRuns)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("raw_pingpong/pipe64" + suffix).c_str(), raw_pingpong_pipe, pl)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
#endif
  }
  for (const Placement& pl : kPlacements) {
    if (!placement_available(pl)) continue;
    const std::string suffix = std::string("/") + pl.name;
    benchmark::RegisterBenchmark(("queue_throughput/int" + suffix).c_str(), queue_throughput<int>, pl, &g_int_msgs)
        ->UseManualTime()
        ->Iterations(kRuns)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("queue_throughput/4KiB" + suffix).c_str(), queue_throughput<std::vector<std::byte>>,
                                 pl, &g_bytes_msgs)
        ->UseManualTime()
        ->Iterations(kRuns)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("queue_pingpong/int" + suffix).c_str(), queue_pingpong, pl)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
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
  // starts fork children, but keeps the convention).
  mp::freeze_support();
#if MP_BENCH_HAVE_LINUX
  g_bench_pid = ::getpid();
#endif

  // Own flags out of the way of Google Benchmark's.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    long v = 0;
    long* target = nullptr;
    if (take_flag(argv[i], "--int_msgs=", v)) target = &g_int_msgs;
    else if (take_flag(argv[i], "--bytes_msgs=", v)) target = &g_bytes_msgs;
    if (target) {
      if (v <= 0) {
        std::fprintf(stderr, "bench_queue: bad %s\n", argv[i]);
        return 1;
      }
      *target = v;
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
