// bench_pool - Pool's costs, beside the raw system calls, for bench/run.py to put beside CPython's
// Pool (py_baseline.py: pool_map, pool_apply_async, pool_startup).
//
//   pool_map/default_chunksize   Pool(2).map(square, iota(0, N)), CPython's default chunksize;
//                                N = --map_n (200000; --quick 20000). Counter tasks_per_s: the
//                                median of the iterations' N / time (py_baseline.py: median of 5).
//   pool_map/chunksize1          the same with chunksize 1, N = --map1_n (20000; quick 2000).
//   pool_apply_async/rtt         apply_async(square, i).get(), one round trip per iteration (us).
//   pool_startup/close_join      Pool(2) started, close(), join() (ms per iteration).
//   pool_startup/with_terminate  Pool(2) started and destroyed (the destructor terminates).
//   raw_fork2_exit_waitpid       two fork()s whose children _exit(0), then two waitpid()s: the
//                                floor of starting and ending two workers.
// The pools use the fork context: CPython 3.11's default on Linux, which its figures use (mp's
// default here is forkserver, as CPython 3.14's).
#include <mp/pool.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if __has_include(<sys/wait.h>) && __has_include(<unistd.h>)
#include <sys/wait.h>
#include <unistd.h>
#define MP_BENCH_HAVE_FORK 1
#else
#define MP_BENCH_HAVE_FORK 0
#endif

namespace {

long square(long x) { return x * x; }

mp::PoolOptions two() { return mp::PoolOptions{.processes = 2, .context = &mp::get_context("fork")}; }

long g_map_n = 200000;
long g_map1_n = 20000;

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void map_case(benchmark::State& state, long n, std::optional<std::size_t> chunksize) {
  mp::Pool pool(two());
  pool.map(square, mp::range(0L, 2000L));  // warm-up, as py_baseline.py
  std::vector<double> rates;
  for (auto _ : state) {
    auto t0 = Clock::now();
    auto r = pool.map(square, mp::range(0L, n), chunksize);
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (r.size() != static_cast<std::size_t>(n) || r.back() != (n - 1) * (n - 1)) {
      state.SkipWithError("wrong results");
      return;
    }
    state.SetIterationTime(s);
    rates.push_back(static_cast<double>(n) / s);
  }
  state.counters["tasks_per_s"] = median(rates);
}

void apply_rtt(benchmark::State& state) {
  mp::Pool pool(two());
  pool.map(square, mp::range(0L, 2000L));
  long i = 0;
  for (auto _ : state) {
    long v = pool.apply_async(square, i).get();
    if (v != i * i) {
      state.SkipWithError("wrong result");
      return;
    }
    ++i;
  }
}

void startup_close_join(benchmark::State& state) {
  mp::Pool(two()).terminate();  // warm-up
  for (auto _ : state) {
    mp::Pool p(two());
    p.close();
    p.join();
  }
}

void startup_terminate(benchmark::State& state) {
  for (auto _ : state) {
    mp::Pool p(two());
  }
}

#if MP_BENCH_HAVE_FORK
void raw_fork2(benchmark::State& state) {
  for (auto _ : state) {
    pid_t a = ::fork();
    if (a == 0) ::_exit(0);
    pid_t b = ::fork();
    if (b == 0) ::_exit(0);
    int st = 0;
    ::waitpid(a, &st, 0);
    ::waitpid(b, &st, 0);
  }
}
#endif

void take_flag(int& argc, char** argv, const char* name, long& out) {
  std::string prefix = std::string(name) + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      out = std::atol(argv[i] + prefix.size());
      for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
      --argc;
      --i;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--exit-now") == 0) return 0;
  mp::freeze_support();
  take_flag(argc, argv, "--map_n", g_map_n);
  take_flag(argc, argv, "--map1_n", g_map1_n);
  // The raw pair first, while this process is as small as it will be (fork's cost grows with the
  // parent: after the map cases it is ~2x).
#if MP_BENCH_HAVE_FORK
  benchmark::RegisterBenchmark("raw_fork2_exit_waitpid", raw_fork2)->Unit(benchmark::kMillisecond);
#endif
  benchmark::RegisterBenchmark("pool_map/default_chunksize",
                               [](benchmark::State& s) { map_case(s, g_map_n, std::nullopt); })
      ->UseManualTime()->Iterations(5)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("pool_map/chunksize1", [](benchmark::State& s) { map_case(s, g_map1_n, 1); })
      ->UseManualTime()->Iterations(3)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("pool_apply_async/rtt", apply_rtt)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("pool_startup/close_join", startup_close_join)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("pool_startup/with_terminate", startup_terminate)->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
