// bench_connection - what a message over an mp::Connection costs, beside the raw system calls it is
// built on. Run it alone (Google Benchmark flags apply) or through bench/run.py, which puts the
// figures beside CPython's multiprocessing.connection and the limits of this machine.
//
// Every case runs in three placements, the last part of its name:
//   unpinned   the scheduler decides;
//   same_cpu   parent and child both pinned to CPU 0;
//   cross_cpu  parent on CPU 0, child on CPU 1.
// The child is an mp::Process started with the fork context; it pins itself first. It is started
// (and warmed up) before the timed loop, so no case times a process start.
//
// Ping-pong cases (wall-clock time per iteration = one round trip, in microseconds):
//   conn_pingpong/bytes64/<pl>        Pipe(): send_bytes(64 B) / recv_bytes_into(reused buffer)
//   conn_pingpong/bytes64_alloc/<pl>  Pipe(): send_bytes(64 B) / recv_bytes() (a new vector each)
//   conn_pingpong/object/<pl>         Pipe(): send/recv of {int, double, std::string "abc"}
//                                     (CPython's pickled (1, 2.5, "abc"))
//   conn_pingpong/simplex64/<pl>      two Pipe(false): send_bytes(64 B) / recv_bytes_into
//   raw_pingpong/socketpair64/<pl>    fork(); write/read of 64 B on one AF_UNIX socketpair
//   raw_pingpong/pipe64/<pl>          fork(); write/read of 64 B over two pipe()s
//
// Throughput cases (child -> parent; one iteration = a request of one small message, then
// --total_mib MiB, 512 by default, in messages of the given size; the bytes_per_second counter,
// and faults_per_msg, the receiver's minor page faults per message, as py_baseline.py reports):
//   conn_throughput/{socketpair,pipe}_{1MiB,64MiB}/<pl>     recv_bytes_into(reused buffer)
//   conn_throughput/{socketpair,pipe}_64MiB_alloc/<pl>      recv_bytes() (a new vector each)
//   raw_throughput/{socketpair,pipe}_1MiB/<pl>    fork(); 1 MiB write()s, 1 MiB read()s (= limits.c)
//   raw_throughput/{socketpair,pipe}_64MiB/<pl>   fork(); 64 MiB write()s from a 64 MiB buffer, read()s
//                                                 into a 64 MiB buffer: a 64 MiB message's footprint
// socketpair = Pipe() (duplex), pipe = Pipe(false) (the request goes over a second Pipe(false)).
//
// Own flags, taken out before Google Benchmark sees the command line:
//   --total_mib=N   bytes per throughput iteration (default 512; bench/run.py --quick passes 128)
//   --exit-now      return at once (as bench_process)
#include <mp/mp.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#if __has_include(<sched.h>) && __has_include(<sys/socket.h>) && __has_include(<sys/wait.h>) && \
    __has_include(<unistd.h>) && defined(__linux__)
#define MP_BENCH_HAVE_LINUX 1
#include <fcntl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#else
#define MP_BENCH_HAVE_LINUX 0
#endif

#include "placement.hpp"

namespace {

std::size_t g_total_bytes = std::size_t{512} << 20;  // per throughput iteration

// ---- placements ---------------------------------------------------------------------------------

using mp_bench::kPlacements;
using mp_bench::Placement;

#if MP_BENCH_HAVE_LINUX
using mp_bench::cpu_allowed;

using mp_bench::pin_to;

using mp_bench::ParentPin;
#endif

// ---- the child process --------------------------------------------------------------------------

// Owns the child: on every way out (an error included) it ends it and reaps it.
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
      p_.join();
    } catch (...) {
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
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

std::span<const std::byte> as_bytes(const std::vector<std::byte>& v, std::size_t n) { return {v.data(), n}; }

void fail(benchmark::State& state, const std::string& why) { state.SkipWithError(why.c_str()); }

// ---- ping-pong ----------------------------------------------------------------------------------

constexpr std::size_t kMsg = 64;
constexpr int kWarmup = 200;

// CPython's (1, 2.5, "abc").
struct Small {
  int i = 0;
  double d = 0;
  std::string s;
};

enum class Mode { bytes_into, bytes_alloc, object };

// The child of a ping-pong: echoes until an empty message (Small{-1} for objects).
void echo(mp::Connection rx, mp::Connection tx, Mode mode, int cpu) {
#if MP_BENCH_HAVE_LINUX
  pin_to(cpu);
#else
  (void)cpu;
#endif
  switch (mode) {
    case Mode::bytes_into: {
      std::vector<std::byte> buf(4096);
      for (;;) {
        std::size_t n = rx.recv_bytes_into(buf);
        if (n == 0) return;
        tx.send_bytes(as_bytes(buf, n));
      }
    }
    case Mode::bytes_alloc:
      for (;;) {
        std::vector<std::byte> m = rx.recv_bytes();
        if (m.empty()) return;
        tx.send_bytes(m);
      }
    case Mode::object:
      for (;;) {
        Small m = rx.recv<Small>();
        if (m.i < 0) return;
        tx.send(m);
      }
  }
}

void conn_pingpong(benchmark::State& state, Mode mode, bool duplex, Placement pl) {
  try {
#if MP_BENCH_HAVE_LINUX
    ParentPin pin(pl.parent);
#endif
    // Parent: tx → child's rx; child's tx → rx.
    mp::Connection rx, tx, crx, ctx;
    if (duplex) {  // one AF_UNIX socketpair
      auto [a, b] = mp::Pipe();
      rx = tx = a;
      crx = ctx = b;
    } else {  // two pipes
      std::tie(crx, tx) = mp::Pipe(false);
      std::tie(rx, ctx) = mp::Pipe(false);
    }
    Child child(echo, crx, ctx, mode, pl.child);
    crx.close();  // the child's ends: only the child holds them now, so its death is EOF here
    ctx.close();

    const std::vector<std::byte> msg(kMsg, std::byte{'x'});
    std::vector<std::byte> buf(4096);
    const Small obj{1, 2.5, "abc"};
    auto round_trip = [&]() -> bool {
      switch (mode) {
        case Mode::bytes_into:
          tx.send_bytes(msg);
          return rx.recv_bytes_into(buf) == kMsg;
        case Mode::bytes_alloc: {
          tx.send_bytes(msg);
          std::vector<std::byte> r = rx.recv_bytes();
          benchmark::DoNotOptimize(r.data());
          return r.size() == kMsg;
        }
        case Mode::object: {
          tx.send(obj);
          Small r = rx.recv<Small>();
          benchmark::DoNotOptimize(r);
          return r.s.size() == 3;
        }
      }
      return false;
    };
    for (int i = 0; i < kWarmup; ++i) {
      if (!round_trip()) return fail(state, "wrong reply");
    }
    for (auto _ : state) {
      if (!round_trip()) {
        fail(state, "wrong reply");
        break;
      }
    }
    if (mode == Mode::object) tx.send(Small{-1, 0, {}});
    else tx.send_bytes(std::string_view{});
    if (auto err = child.finish()) fail(state, *err);
  } catch (const std::exception& e) {
    fail(state, e.what());
  }
}

// ---- throughput ---------------------------------------------------------------------------------

// The child of a throughput case: on each request (a message holding a count) it sends `count`
// messages of `size` bytes; an empty request ends it.
void blast(mp::Connection data, mp::Connection control, std::size_t size, int cpu) {
#if MP_BENCH_HAVE_LINUX
  pin_to(cpu);
#else
  (void)cpu;
#endif
  const std::vector<std::byte> payload(size, std::byte{'x'});
  std::vector<std::byte> req(64);
  for (;;) {
    std::size_t n = control.recv_bytes_into(req);
    if (n != sizeof(std::uint64_t)) return;
    std::uint64_t count;
    std::memcpy(&count, req.data(), sizeof count);
    for (std::uint64_t i = 0; i < count; ++i) data.send_bytes(payload);
  }
}

// Minor page faults of this process so far (0 where getrusage is missing).
long minor_faults() {
#if MP_BENCH_HAVE_LINUX
  rusage u{};
  if (::getrusage(RUSAGE_SELF, &u) == 0) return u.ru_minflt;
#endif
  return 0;
}

void conn_throughput(benchmark::State& state, bool duplex, std::size_t size, bool into, Placement pl) {
  try {
#if MP_BENCH_HAVE_LINUX
    ParentPin pin(pl.parent);
#endif
    // data: child → parent; control: parent → child.
    mp::Connection rx, ctl_w, cdata, cctl;
    if (duplex) {
      auto [a, b] = mp::Pipe();
      rx = ctl_w = a;
      cdata = cctl = b;
    } else {
      std::tie(rx, cdata) = mp::Pipe(false);
      std::tie(cctl, ctl_w) = mp::Pipe(false);
    }
    Child child(blast, cdata, cctl, size, pl.child);
    cdata.close();
    cctl.close();

    const std::uint64_t count = std::max<std::uint64_t>(2, g_total_bytes / size);
    std::vector<std::byte> buf;
    if (into) buf.assign(size, std::byte{0});  // touched once: no page faults in the timed part
    auto transfer = [&](std::uint64_t n) -> bool {
      std::byte req[sizeof n];
      std::memcpy(req, &n, sizeof n);
      ctl_w.send_bytes(std::span<const std::byte>(req, sizeof req));
      for (std::uint64_t i = 0; i < n; ++i) {
        if (into) {
          if (rx.recv_bytes_into(buf) != size) return false;
        } else {
          std::vector<std::byte> m = rx.recv_bytes();
          benchmark::DoNotOptimize(m.data());
          if (m.size() != size) return false;
        }
      }
      return true;
    };
    if (!transfer(std::min<std::uint64_t>(count, 2))) return fail(state, "wrong message size");  // warm-up
    const long faults0 = minor_faults();
    for (auto _ : state) {
      if (!transfer(count)) {
        fail(state, "wrong message size");
        break;
      }
    }
    const long faults = minor_faults() - faults0;
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(count * size));
    state.counters["msgs_per_iter"] = static_cast<double>(count);
    // As py_baseline.py's faults_per_msg: the receiver's minor page faults per message.
    if (state.iterations() > 0)
      state.counters["faults_per_msg"] = static_cast<double>(faults) / static_cast<double>(state.iterations() * count);
    ctl_w.send_bytes(std::string_view{});
    if (auto err = child.finish()) fail(state, *err);
  } catch (const std::exception& e) {
    fail(state, e.what());
  }
}

// ---- the raw system calls -----------------------------------------------------------------------

#if MP_BENCH_HAVE_LINUX
// Whole reads and writes; false at end of file or on an error.
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

// The two ends a raw case uses: parent reads prd, writes pwr; the child reads crd, writes cwr.
struct RawFds {
  int prd = -1, pwr = -1, crd = -1, cwr = -1;
  bool make(bool socketpair) {
    if (socketpair) {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return false;
      prd = pwr = sv[0];
      crd = cwr = sv[1];
      return true;
    }
    int a[2], b[2];
    if (::pipe2(a, O_CLOEXEC) != 0) return false;
    if (::pipe2(b, O_CLOEXEC) != 0) {
      ::close(a[0]);
      ::close(a[1]);
      return false;
    }
    crd = a[0];  // parent → child
    pwr = a[1];
    prd = b[0];  // child → parent
    cwr = b[1];
    return true;
  }
  // For a socketpair both ends of a side are one descriptor.
  static void close_pair(int& rd, int& wr) {
    if (rd >= 0) ::close(rd);
    if (wr >= 0 && wr != rd) ::close(wr);
    rd = wr = -1;
  }
  void close_child_side() { close_pair(crd, cwr); }
  void close_parent_side() { close_pair(prd, pwr); }
  RawFds() = default;
  RawFds(const RawFds&) = delete;
  RawFds& operator=(const RawFds&) = delete;
  ~RawFds() {
    close_parent_side();
    close_child_side();
  }
};

// Forks a child that pins itself and runs body(crd, cwr), then _exit(0 if it returned true).
template <class Body>
pid_t raw_child(RawFds& fds, int cpu, Body body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    fds.close_parent_side();
    bool ok = false;
    try {
      pin_to(cpu);
      ok = body(fds.crd, fds.cwr);
    } catch (...) {
    }
    ::_exit(ok ? 0 : 1);
  }
  return pid;
}

std::optional<std::string> raw_reap(pid_t pid) {
  int status = 0;
  pid_t r;
  do r = ::waitpid(pid, &status, 0);
  while (r < 0 && errno == EINTR);
  if (r != pid) return std::string("waitpid: ") + std::strerror(errno);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return "raw child status " + std::to_string(status);
  return std::nullopt;
}

// Reads a whole message of n bytes, the first read deciding between a message and the end:
// 1 when one came, 0 at end of file, -1 on an error. One read() per message when it is all there.
int read_message(int fd, void* p, std::size_t n) {
  ssize_t r;
  do r = ::read(fd, p, n);
  while (r < 0 && errno == EINTR);
  if (r == 0) return 0;
  if (r < 0) return -1;
  return read_full(fd, static_cast<char*>(p) + r, n - static_cast<std::size_t>(r)) ? 1 : -1;
}

void raw_pingpong(benchmark::State& state, bool socketpair, Placement pl) {
  ParentPin pin(pl.parent);
  RawFds fds;
  if (!fds.make(socketpair)) return fail(state, std::string("socketpair/pipe: ") + std::strerror(errno));
  pid_t pid = raw_child(fds, pl.child, [](int rd, int wr) {
    char m[kMsg];
    for (;;) {  // as limits.c: one read() and one write() per round trip
      int r = read_message(rd, m, kMsg);
      if (r <= 0) return r == 0;
      if (!write_full(wr, m, kMsg)) return false;
    }
  });
  if (pid < 0) return fail(state, std::string("fork: ") + std::strerror(errno));
  fds.close_child_side();
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
  if (!ok) fail(state, "raw ping-pong failed");
  else if (err) fail(state, *err);
}

// --total_mib bytes child → parent in write()s of `chunk` bytes from one buffer of that size, read
// with read()s of up to `chunk` bytes into one buffer of that size. chunk = 1 MiB is limits.c's
// stream (both buffers stay in cache); chunk = 64 MiB has the memory footprint of a 64 MiB message.
void raw_throughput(benchmark::State& state, bool socketpair, std::size_t chunk, Placement pl) {
  ParentPin pin(pl.parent);
  RawFds fds;
  if (!fds.make(socketpair)) return fail(state, std::string("socketpair/pipe: ") + std::strerror(errno));
  pid_t pid = raw_child(fds, pl.child, [chunk](int rd, int wr) {
    std::vector<char> src(chunk, 'x');
    for (;;) {
      std::uint64_t bytes;
      int r = read_message(rd, &bytes, sizeof bytes);
      if (r <= 0) return r == 0;
      for (std::uint64_t put = 0; put < bytes; put += chunk) {
        if (!write_full(wr, src.data(), static_cast<std::size_t>(std::min<std::uint64_t>(chunk, bytes - put))))
          return false;
      }
    }
  });
  if (pid < 0) return fail(state, std::string("fork: ") + std::strerror(errno));
  fds.close_child_side();
  std::vector<char> dst(chunk, 0);
  auto transfer = [&](std::uint64_t bytes) {
    if (!write_full(fds.pwr, &bytes, sizeof bytes)) return false;
    for (std::uint64_t got = 0; got < bytes;) {
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, bytes - got));
      std::size_t at = static_cast<std::size_t>(got % chunk);  // fill the buffer, then start over
      ssize_t r = ::read(fds.prd, dst.data() + at, std::min(want, chunk - at));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      got += static_cast<std::uint64_t>(r);
    }
    return true;
  };
  const std::uint64_t total = std::max<std::uint64_t>(g_total_bytes, 2 * chunk);
  bool ok = transfer(2 * chunk);
  if (ok) {
    for (auto _ : state) {
      if (!transfer(total)) {
        ok = false;
        break;
      }
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(total));
  fds.close_parent_side();
  auto err = raw_reap(pid);
  if (!ok) fail(state, "raw stream failed");
  else if (err) fail(state, *err);
}
#endif

// ---- registration -------------------------------------------------------------------------------

std::string name(const char* group, const char* what, const Placement& pl) {
  return std::string(group) + "/" + what + "/" + pl.name;
}

void register_all() {
  for (const Placement& pl : kPlacements) {
#if MP_BENCH_HAVE_LINUX
    if (!cpu_allowed(pl.parent) || !cpu_allowed(pl.child)) continue;  // e.g. one CPU: no cross_cpu
    // The raw cases first, before this process has started any child of the library.
    for (bool sp : {true, false}) {
      benchmark::RegisterBenchmark(name("raw_pingpong", sp ? "socketpair64" : "pipe64", pl).c_str(), raw_pingpong, sp, pl)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
#else
    if (pl.parent >= 0) continue;
#endif
    struct PP {
      const char* what;
      Mode mode;
      bool duplex;
    };
    for (PP c : {PP{"bytes64", Mode::bytes_into, true}, PP{"bytes64_alloc", Mode::bytes_alloc, true},
                 PP{"object", Mode::object, true}, PP{"simplex64", Mode::bytes_into, false}}) {
      benchmark::RegisterBenchmark(name("conn_pingpong", c.what, pl).c_str(), conn_pingpong, c.mode, c.duplex, pl)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
  for (const Placement& pl : kPlacements) {
#if MP_BENCH_HAVE_LINUX
    if (!cpu_allowed(pl.parent) || !cpu_allowed(pl.child)) continue;
    for (bool sp : {true, false}) {
      for (std::size_t mib : {1, 64}) {
        std::string what = std::string(sp ? "socketpair" : "pipe") + "_" + std::to_string(mib) + "MiB";
        benchmark::RegisterBenchmark(name("raw_throughput", what.c_str(), pl).c_str(), raw_throughput, sp, mib << 20,
                                     pl)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond);
      }
    }
#else
    if (pl.parent >= 0) continue;
#endif
    struct TP {
      const char* what;
      bool duplex;
      std::size_t size;
      bool into;
    };
    for (TP c : {TP{"socketpair_1MiB", true, std::size_t{1} << 20, true},
                 TP{"socketpair_64MiB", true, std::size_t{64} << 20, true},
                 TP{"socketpair_64MiB_alloc", true, std::size_t{64} << 20, false},
                 TP{"pipe_1MiB", false, std::size_t{1} << 20, true},
                 TP{"pipe_64MiB", false, std::size_t{64} << 20, true},
                 TP{"pipe_64MiB_alloc", false, std::size_t{64} << 20, false}}) {
      benchmark::RegisterBenchmark(name("conn_throughput", c.what, pl).c_str(), conn_throughput, c.duplex, c.size,
                                   c.into, pl)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--exit-now") == 0) return 0;
  // Children started by spawn/forkserver run their work here and never return (this program only
  // uses fork, but keeps the convention).
  mp::freeze_support();

  // Own flags out of the way of Google Benchmark's.
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    constexpr const char kTotal[] = "--total_mib=";
    if (std::strncmp(argv[i], kTotal, sizeof kTotal - 1) == 0) {
      long mib = std::strtol(argv[i] + sizeof kTotal - 1, nullptr, 10);
      if (mib <= 0) {
        std::fprintf(stderr, "bench_connection: bad %s\n", argv[i]);
        return 1;
      }
      g_total_bytes = static_cast<std::size_t>(mib) << 20;
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
