// bench_process - what it costs to start and join a process, per start method, beside the raw
// system calls it is built on. Run it alone (Google Benchmark flags apply) or through bench/run.py,
// which puts the figures beside CPython's multiprocessing and the limits of this machine.
//
// Cases (time per iteration, wall clock):
//   process_start_join/{fork,spawn,forkserver}  mp::get_context(m).Process(noop); start(); join()
//   raw_fork_exit_waitpid                       fork(); child _exit(0); waitpid()
//   raw_posix_spawn_self_waitpid                posix_spawn(this executable, "--exit-now"); waitpid()
//
// `bench_process --exit-now` returns at once: it is the child of the raw posix_spawn case, so that
// case measures exec and dynamic loading of this very binary - what spawn cannot go below.
#include <mp/mp.hpp>

#include <benchmark/benchmark.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#if __has_include(<spawn.h>) && __has_include(<sys/wait.h>) && __has_include(<unistd.h>)
#define MP_BENCH_HAVE_POSIX 1
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
extern char** environ;
#else
#define MP_BENCH_HAVE_POSIX 0
#endif

namespace {

// The trivial target: a plain function, found by address in spawn/forkserver children.
void noop() {}

// One start+join; false (with the reason in `error`) when the child did not exit 0.
bool start_join_once(mp::Context& ctx, std::string& error) {
  auto p = ctx.Process(noop);
  p.start();
  p.join();
  auto code = p.exitcode();
  if (code != 0) {
    error = "child exit code " + (code ? std::to_string(*code) : std::string("none"));
    return false;
  }
  return true;
}

void process_start_join(benchmark::State& state, const char* method) {
  std::string error;
  try {
    mp::Context& ctx = mp::get_context(method);
    // Warm-up outside the timing: starts the fork server, faults in the code paths.
    if (!start_join_once(ctx, error)) {
      state.SkipWithError(error.c_str());
      return;
    }
    for (auto _ : state) {
      if (!start_join_once(ctx, error)) {
        state.SkipWithError(error.c_str());
        break;
      }
    }
  } catch (const std::exception& e) {
    error = e.what();
    state.SkipWithError(error.c_str());
  }
}

#if MP_BENCH_HAVE_POSIX
bool wait_exit0(pid_t pid, std::string& error) {
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  if (r != pid) {
    error = std::string("waitpid: ") + std::strerror(errno);
    return false;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    error = "child did not exit 0 (status " + std::to_string(status) + ")";
    return false;
  }
  return true;
}

void raw_fork_exit_waitpid(benchmark::State& state) {
  std::string error;
  for (auto _ : state) {
    pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    if (pid < 0) {
      error = std::string("fork: ") + std::strerror(errno);
      state.SkipWithError(error.c_str());
      break;
    }
    if (!wait_exit0(pid, error)) {
      state.SkipWithError(error.c_str());
      break;
    }
  }
}

void raw_posix_spawn_self_waitpid(benchmark::State& state) {
  std::string error;
  std::string exe = mp::get_executable();
  std::string flag = "--exit-now";
  std::vector<char*> argv{exe.data(), flag.data(), nullptr};
  for (auto _ : state) {
    pid_t pid;
    if (int e = ::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), environ)) {
      error = "posix_spawn " + exe + ": " + std::strerror(e);
      state.SkipWithError(error.c_str());
      break;
    }
    if (!wait_exit0(pid, error)) {
      state.SkipWithError(error.c_str());
      break;
    }
  }
}
#endif

void register_all() {
#if MP_BENCH_HAVE_POSIX
  // The raw cases first, before this process has started any child of the library.
  benchmark::RegisterBenchmark("raw_fork_exit_waitpid", raw_fork_exit_waitpid)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("raw_posix_spawn_self_waitpid", raw_posix_spawn_self_waitpid)
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
#endif
  for (const char* method : {"fork", "spawn", "forkserver"}) {
    // The parent's CPU time is a small part of a start+join: measure the wall clock.
    benchmark::RegisterBenchmark((std::string("process_start_join/") + method).c_str(), process_start_join, method)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // The child of raw_posix_spawn_self_waitpid: exec and load this binary, nothing more.
  if (argc > 1 && std::strcmp(argv[1], "--exit-now") == 0) return 0;
  // Children started by spawn/forkserver run their work here and never return.
  mp::freeze_support();

  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
