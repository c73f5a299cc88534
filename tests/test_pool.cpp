// Pool and ThreadPool: CPython's pool cases (Lib/test/_test_multiprocessing.py, _TestPool,
// _TestPoolWorkerErrors, _TestPoolWorkerLifetime) under every start method, and what CPython
// cannot do: a worker killed mid-task fails that task instead of hanging the pool.
#include "test_helpers.hpp"

#include <mp/mp.hpp>
#include <mp/pool.hpp>

#include <atomic>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <thread>

namespace {

using namespace mp_test;

// ---- tasks (plain functions: found by address in spawn/forkserver workers) ---------------------
long sqr(long x) { return x * x; }
long sqr_wait(long x, double wait) {
  std::this_thread::sleep_for(mp::Seconds(wait));
  return x * x;
}
long mul(long x, long y) { return x * y; }
int pid_of_worker(int) { return static_cast<int>(::getpid()); }
std::string greet(std::string who) { return "hello " + who; }
int raise_value_error(int x) {
  if (x == 5) throw mp::ValueError("five is right out");
  return x;
}
int raise_runtime(int) { throw std::runtime_error("boom"); }
int raise_out_of_range(int) { throw std::out_of_range("past the end"); }
void noop() {}
long die_on(long x, long victim) {
  if (x == victim) std::abort();
  return x;
}
int exit_now(int code) { std::_Exit(code); }

struct CustomError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
MP_EXCEPTION(CustomError);
struct UnregisteredError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
int raise_custom(int) { throw CustomError("custom"); }
int raise_unregistered(int) { throw UnregisteredError("stranger"); }

// Writes this worker's pid where the test looks for it, then works for `seconds`.
long report_and_work(std::string path, long x, double seconds) {
  write_file(path, std::to_string(::getpid()));
  std::this_thread::sleep_for(mp::Seconds(seconds));
  return x;
}
long spin_briefly(std::string dir, long x) {
  if (x % 50 == 0) write_file(dir + "/" + std::to_string(::getpid()), "");
  auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
  while (std::chrono::steady_clock::now() < until) {
  }
  return x;
}

// A result whose encoding fails at run time (CPython: an unpicklable result -> MaybeEncodingError).
struct Fussy {
  int v = 0;
  template <class A>
  void save(A& a) const {
    if (v < 0) throw std::runtime_error("cannot encode a negative Fussy");
    a(v);
  }
  template <class A>
  void load(A& a) {
    a(v);
  }
};
Fussy make_fussy(int v) { return Fussy{v}; }

// The initializer's effect, seen by tasks in the same worker.
int g_initialized = 0;
void init_worker(int value) { g_initialized = value; }
int read_initialized(int) { return g_initialized; }

// An input whose reading throws at item `bad` (CPython's test uses a generator that raises).
struct ThrowingInput {
  long n = 0, bad = 0;
  struct iterator {
    long v, bad;
    long operator*() const {
      if (v == bad) throw std::runtime_error("bad input");
      return v;
    }
    iterator& operator++() {
      ++v;
      return *this;
    }
    friend bool operator!=(const iterator& a, const iterator& b) { return a.v != b.v; }
  };
  iterator begin() const { return {0, bad}; }
  iterator end() const { return {n, bad}; }
};

// An endless input (0, 1, 2, ...).
struct Endless {
  struct sentinel {};
  struct iterator {
    long v = 0;
    long operator*() const { return v; }
    iterator& operator++() {
      ++v;
      return *this;
    }
    friend bool operator!=(const iterator&, const sentinel&) { return true; }
  };
  iterator begin() const { return {}; }
  sentinel end() const { return {}; }
};

class PoolTest : public mp_test::MethodTest<const char*> {
 protected:
  mp::Context& ctx() { return mp::get_context(GetParam()); }
  mp::PoolOptions opts(int n) { return mp::PoolOptions{.processes = n, .context = &ctx()}; }
};

TEST_P(PoolTest, Apply) {
  mp::Pool pool(opts(4));
  EXPECT_EQ(pool.apply(sqr, 5L), 25);
  EXPECT_EQ(pool.apply(mul, 6L, 7L), 42);
  EXPECT_EQ(pool.apply(greet, std::string("bob")), "hello bob");
  pool.apply(noop);
  EXPECT_EQ(pool.apply([](int a, int b) { return a + b; }, 2, 3), 5);
}

TEST_P(PoolTest, Map) {
  mp::Pool pool(opts(4));
  std::vector<long> in(10);
  std::iota(in.begin(), in.end(), 0L);
  std::vector<long> want;
  for (long x : in) want.push_back(x * x);
  EXPECT_EQ(pool.map(sqr, in), want);
  std::vector<long> big(100);
  std::iota(big.begin(), big.end(), 0L);
  want.clear();
  for (long x : big) want.push_back(x * x);
  EXPECT_EQ(pool.map(sqr, big, 53), want);
  EXPECT_EQ(pool.map(sqr, mp::range(0L, 100L)), want);
  // A lambda, an input of another type (converted to the parameter's).
  EXPECT_EQ(pool.map([](int x) { return x + 1; }, std::vector<int>{1, 2, 3}), (std::vector<int>{2, 3, 4}));
  EXPECT_EQ(pool.map(sqr, std::vector<int>{1, 2, 3}), (std::vector<long>{1, 4, 9}));
}

TEST_P(PoolTest, MapChunksize) {
  mp::Pool pool(opts(2));
  std::vector<long> in(1000);
  std::iota(in.begin(), in.end(), 0L);
  for (std::size_t cs : {1u, 7u, 100u, 999u, 1000u, 5000u}) {
    auto got = pool.map(sqr, in, cs);
    ASSERT_EQ(got.size(), in.size());
    for (std::size_t i = 0; i < in.size(); ++i) ASSERT_EQ(got[i], in[i] * in[i]) << "chunksize " << cs;
  }
  EXPECT_THROW(pool.map(sqr, in, 0), mp::ValueError);
  EXPECT_EQ(mp::default_chunksize(200000, 2), 25000u);
  EXPECT_EQ(mp::default_chunksize(10, 4), 1u);
  EXPECT_EQ(mp::default_chunksize(17, 2), 3u);
  EXPECT_EQ(mp::default_chunksize(0, 2), 0u);
}

TEST_P(PoolTest, Starmap) {
  mp::Pool pool(opts(2));
  std::vector<std::tuple<long, long>> in;
  std::vector<long> want;
  for (long i = 0; i < 10; ++i) {
    in.emplace_back(i, i * 2);
    want.push_back(i * i * 2);
  }
  EXPECT_EQ(pool.starmap(mul, in), want);
  EXPECT_EQ(pool.starmap(mul, in, 3), want);
  EXPECT_EQ(pool.starmap_async(mul, in).get(mp::Seconds(30)), want);
  std::vector<std::pair<long, long>> pairs{{2, 3}, {4, 5}};
  EXPECT_EQ(pool.starmap(mul, pairs), (std::vector<long>{6, 20}));
}

TEST_P(PoolTest, MapAsyncAndCallbacks) {
  mp::Pool pool(opts(2));
  std::vector<long> in{1, 2, 3};
  EXPECT_EQ(pool.map_async(sqr, in).get(mp::Seconds(30)), (std::vector<long>{1, 4, 9}));

  std::mutex m;
  std::vector<long> called;
  std::thread::id callback_thread;
  auto r = pool.map_async(sqr, in, std::nullopt,
                          mp::AsyncOptions{.callback = [&](const std::vector<long>& v) {
                            std::lock_guard g(m);
                            called = v;
                            callback_thread = std::this_thread::get_id();
                          }});
  r.wait(mp::Seconds(30));
  ASSERT_TRUE(r.ready());
  {
    std::lock_guard g(m);
    EXPECT_EQ(called, (std::vector<long>{1, 4, 9}));
    EXPECT_NE(callback_thread, std::this_thread::get_id());  // the result-handling thread
  }
  // error_callback gets the exception; the callback does not run.
  std::exception_ptr seen;
  bool callback_ran = false;
  auto e = pool.map_async(raise_value_error, std::vector<int>{1, 5, 7}, 1,
                          mp::AsyncOptions{.callback = [&](const std::vector<int>&) { callback_ran = true; },
                                           .error_callback = [&](std::exception_ptr x) { seen = x; }});
  e.wait(mp::Seconds(30));
  ASSERT_TRUE(e.ready());
  EXPECT_FALSE(e.successful());
  EXPECT_FALSE(callback_ran);
  ASSERT_TRUE(seen);
  EXPECT_THROW(std::rethrow_exception(seen), mp::ValueError);
  EXPECT_THROW(e.get(), mp::ValueError);
  // A callback whose parameter does not match the result: refused at once.
  EXPECT_THROW(pool.map_async(sqr, in, std::nullopt, mp::AsyncOptions{.callback = [](int) {}}), mp::ValueError);
}

TEST_P(PoolTest, ApplyAsyncTimeoutReadySuccessful) {
  mp::Pool pool(opts(2));
  auto r = pool.apply_async(sqr_wait, 7L, 0.5);
  EXPECT_FALSE(r.ready());
  EXPECT_THROW((void)r.successful(), mp::ValueError);
  auto t0 = Clock::now();
  EXPECT_THROW(r.get(mp::Seconds(0.1)), mp::TimeoutError);
  EXPECT_LT(elapsed_since(t0), 5.0);
  EXPECT_EQ(r.get(mp::Seconds(30)), 49);
  EXPECT_TRUE(r.ready());
  EXPECT_TRUE(r.successful());
  EXPECT_EQ(r.get(), 49);  // again

  std::atomic<long> got{0};
  auto c = pool.apply_async(mp::AsyncOptions{.callback = [&](long v) { got = v; }}, sqr, 9L);
  EXPECT_EQ(c.get(mp::Seconds(30)), 81);
  EXPECT_EQ(got.load(), 81);  // the callback ran before get() returned
  std::atomic<int> void_calls{0};
  pool.apply_async(mp::AsyncOptions{.callback = [&] { ++void_calls; }}, noop).get(mp::Seconds(30));
  EXPECT_EQ(void_calls.load(), 1);
}

TEST_P(PoolTest, ExceptionsKeepTheirType) {
  mp::Pool pool(opts(2));
  EXPECT_THROW(pool.apply(raise_value_error, 5), mp::ValueError);
  EXPECT_THROW(pool.apply(raise_runtime, 0), std::runtime_error);
  EXPECT_THROW(pool.apply(raise_out_of_range, 0), std::out_of_range);
  EXPECT_THROW(pool.apply(raise_custom, 0), CustomError);
  try {
    pool.apply(raise_unregistered, 0);
    FAIL() << "no exception";
  } catch (const mp::RemoteError& e) {
    EXPECT_NE(e.type_name().find("UnregisteredError"), std::string::npos) << e.type_name();
    EXPECT_STREQ(e.what(), "stranger");
  }
  try {
    pool.apply(raise_value_error, 5);
  } catch (const mp::ValueError& e) {
    EXPECT_STREQ(e.what(), "five is right out");
  }
  // map: the first failing chunk fails the whole; the pool goes on working.
  EXPECT_THROW(pool.map(raise_value_error, mp::range(0, 10)), mp::ValueError);
  EXPECT_EQ(pool.apply(sqr, 3L), 9);
}

// CPython's test_unpickleable_result: the task fails with MaybeEncodingError; the pool goes on.
TEST_P(PoolTest, ResultThatCannotBeEncoded) {
  mp::Pool pool(opts(2));
  EXPECT_EQ(pool.apply(make_fussy, 3).v, 3);
  try {
    pool.apply(make_fussy, -1);
    ADD_FAILURE() << "no exception";
  } catch (const mp::MaybeEncodingError& e) {
    EXPECT_NE(std::string(e.what()).find("Error sending result"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cannot encode a negative Fussy"), std::string::npos) << e.what();
  }
  EXPECT_THROW(pool.map(make_fussy, std::vector<int>{1, -2, 3}, 1), mp::MaybeEncodingError);
  EXPECT_EQ(pool.apply(make_fussy, 4).v, 4);
}

TEST_P(PoolTest, Imap) {
  mp::Pool pool(opts(2));
  std::vector<long> want;
  for (long i = 0; i < 100; ++i) want.push_back(i * i);
  std::vector<long> got;
  for (long v : pool.imap(sqr, mp::range(0L, 100L))) got.push_back(v);
  EXPECT_EQ(got, want);
  got.clear();
  for (long v : pool.imap(sqr, mp::range(0L, 100L), 7)) got.push_back(v);
  EXPECT_EQ(got, want);
  auto it = pool.imap(sqr, std::vector<long>{3, 4});
  EXPECT_EQ(it.next(mp::Seconds(30)), 9);
  EXPECT_EQ(it.next(mp::Seconds(30)), 16);
  EXPECT_EQ(it.next(mp::Seconds(30)), std::nullopt);
  EXPECT_THROW(pool.imap(sqr, std::vector<long>{1}, 0), mp::ValueError);
}

TEST_P(PoolTest, ImapUnordered) {
  mp::Pool pool(opts(2));
  std::multiset<long> want, got;
  for (long i = 0; i < 200; ++i) want.insert(i * i);
  for (long v : pool.imap_unordered(sqr, mp::range(0L, 200L))) got.insert(v);
  EXPECT_EQ(got, want);
  got.clear();
  for (long v : pool.imap_unordered(sqr, mp::range(0L, 200L), 13)) got.insert(v);
  EXPECT_EQ(got, want);
}

TEST_P(PoolTest, ImapExceptionPerItemAndTimeout) {
  mp::Pool pool(opts(2));
  auto it = pool.imap(raise_value_error, mp::range(0, 10));
  for (int i = 0; i < 10; ++i) {
    if (i == 5) {
      EXPECT_THROW(it.next(mp::Seconds(30)), mp::ValueError);
    } else {
      EXPECT_EQ(it.next(mp::Seconds(30)), i);
    }
  }
  EXPECT_EQ(it.next(mp::Seconds(30)), std::nullopt);
  auto slow2 = pool.imap([](long x) { return sqr_wait(x, 0.5); }, std::vector<long>{2});
  EXPECT_THROW(slow2.next(mp::Seconds(0.05)), mp::TimeoutError);
  EXPECT_EQ(slow2.next(mp::Seconds(30)), 4);
}

// CPython's test_imap_handle_iterable_exception: the input's own exception comes out where the
// input failed, after the results before it.
TEST_P(PoolTest, ImapInputThatThrows) {
  mp::Pool pool(opts(2));
  for (std::size_t cs : {1u, 3u}) {
    ThrowingInput input{10, 5};
    auto it = pool.imap(sqr, input, cs);
    for (long i = 0; i < 5; ++i) ASSERT_EQ(it.next(mp::Seconds(30)), i * i) << "chunksize " << cs;
    EXPECT_THROW(it.next(mp::Seconds(30)), std::runtime_error);
    auto u = pool.imap_unordered(sqr, input, cs);
    std::set<long> got;
    try {
      while (auto v = u.next(mp::Seconds(30))) got.insert(*v);
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error&) {
    }
    EXPECT_EQ(got, (std::set<long>{0, 1, 4, 9, 16}));
  }
  EXPECT_EQ(pool.apply(sqr, 2L), 4);
}

TEST_P(PoolTest, ImapIsLazyAndCanStopEarly) {
  mp::Pool pool(opts(2));
  // An endless input: only a window ahead of the consumer is submitted.
  auto it = pool.imap(sqr, Endless{});
  for (long i = 0; i < 1000; ++i) ASSERT_EQ(it.next(mp::Seconds(30)), i * i);
  it = {};  // dropped: feeding stops; the pool is not held up
  pool.close();
  pool.join();
}

TEST_P(PoolTest, EmptyIterables) {
  mp::Pool pool(opts(2));
  EXPECT_TRUE(pool.map(sqr, std::vector<long>{}).empty());
  EXPECT_TRUE(pool.map_async(sqr, std::vector<long>{}).get(mp::Seconds(5)).empty());
  EXPECT_TRUE(pool.starmap(mul, std::vector<std::tuple<long, long>>{}).empty());
  auto it = pool.imap(sqr, std::vector<long>{});
  EXPECT_EQ(it.next(mp::Seconds(5)), std::nullopt);
  auto u = pool.imap_unordered(sqr, std::vector<long>{});
  EXPECT_EQ(u.next(mp::Seconds(5)), std::nullopt);
}

TEST_P(PoolTest, ProcessesDefaultAndWorkersDistinct) {
  {
    mp::Pool pool(mp::PoolOptions{.context = &ctx()});
    EXPECT_EQ(pool.processes(), mp::process_cpu_count());
  }  // (not two pools at once: under ASan a fork while the first pool's threads start can hang)
  mp::Pool three(opts(3));
  EXPECT_EQ(three.processes(), 3);
  auto pids = three.map(pid_of_worker, mp::range(0, 300), 1);
  std::set<int> distinct(pids.begin(), pids.end());
  EXPECT_GE(distinct.size(), 1u);
  EXPECT_LE(distinct.size(), 3u);
  EXPECT_EQ(distinct.count(static_cast<int>(::getpid())), 0u);
  EXPECT_THROW(mp::Pool(mp::PoolOptions{.processes = 0}), mp::ValueError);
  EXPECT_THROW(mp::Pool(mp::PoolOptions{.processes = -1}), mp::ValueError);
}

TEST_P(PoolTest, Initializer) {
  mp::Pool pool(mp::PoolOptions{.processes = 2, .initializer = mp::Initializer(init_worker, 42), .context = &ctx()});
  auto got = pool.map(read_initialized, mp::range(0, 20), 1);
  for (int v : got) EXPECT_EQ(v, 42);
}

TEST_P(PoolTest, MaxTasksPerChild) {
  MP_SKIP_THREADED_FORK_UNDER_ASAN(GetParam());
  mp::Pool pool(mp::PoolOptions{.processes = 2, .maxtasksperchild = 3, .context = &ctx()});
  std::set<int> pids;
  for (int i = 0; i < 12; ++i) pids.insert(pool.apply(pid_of_worker, i));
  // 12 tasks, 3 per worker: at least 4 different workers served them.
  EXPECT_GE(pids.size(), 4u);
  auto r = pool.map(sqr, mp::range(0L, 50L), 1);
  EXPECT_EQ(r.size(), 50u);
  pool.close();
  pool.join();
}

TEST_P(PoolTest, CloseTerminateJoin) {
  {
    mp::Pool pool(opts(2));
    EXPECT_THROW(pool.join(), mp::ValueError);  // still running
    auto a = pool.apply_async(sqr_wait, 3L, 0.2);
    pool.close();
    EXPECT_THROW(pool.apply(sqr, 1L), mp::ValueError);
    EXPECT_THROW(pool.map(sqr, std::vector<long>{1}), mp::ValueError);
    EXPECT_THROW(pool.imap(sqr, std::vector<long>{1}), mp::ValueError);
    pool.join();
    EXPECT_EQ(a.get(mp::Seconds(0)), 9);  // close() lets submitted work finish
    pool.join();                          // twice is fine
  }
  {
    mp::Pool pool(opts(2));
    auto slow = pool.map_async([](long) { return sqr_wait(1, 30); }, std::vector<long>{1, 2, 3, 4}, 1);
    auto t0 = Clock::now();
    pool.terminate();
    pool.join();
    EXPECT_LT(elapsed_since(t0), 10.0);  // terminate does not wait for the tasks
    EXPECT_THROW(slow.get(mp::Seconds(5)), mp::ProcessError);  // not left hanging
    EXPECT_THROW(pool.apply(sqr, 1L), mp::ValueError);
  }
}

TEST_P(PoolTest, DestructorTerminates) {
  auto t0 = Clock::now();
  mp::AsyncResult<long> r;
  {
    mp::Pool pool(opts(2));
    r = pool.apply_async(sqr_wait, 2L, 30.0);
  }
  EXPECT_LT(elapsed_since(t0), 10.0);
  EXPECT_THROW(r.get(mp::Seconds(5)), mp::ProcessError);
}

TEST_P(PoolTest, CloseFinishesLazyImap) {
  mp::Pool pool(opts(2));
  auto it = pool.imap(sqr, mp::range(0L, 500L), 3);
  pool.close();  // the rest of the input is submitted now
  pool.join();
  long n = 0;
  while (auto v = it.next(mp::Seconds(0))) {
    EXPECT_EQ(*v, n * n);
    ++n;
  }
  EXPECT_EQ(n, 500);
}

TEST_P(PoolTest, AWorkerThatDiesFailsItsTaskOnly) {
  MP_SKIP_THREADED_FORK_UNDER_ASAN(GetParam());
  mp::Pool pool(opts(2));
  auto before = pool.map(pid_of_worker, mp::range(0, 20), 1);
  std::vector<mp::AsyncResult<long>> results;
  for (long i = 0; i < 20; ++i) results.push_back(pool.apply_async(die_on, i, 7L));
  for (long i = 0; i < 20; ++i) {
    if (i == 7) {
      try {
        results[static_cast<std::size_t>(i)].get(mp::Seconds(30));
        ADD_FAILURE() << "the task whose worker died did not fail";
      } catch (const mp::ProcessError& e) {
        std::string what = e.what();
        EXPECT_NE(what.find("PoolWorker"), std::string::npos) << what;
        // abort(): SIGABRT on POSIX; the C runtime's exit code 3 on Windows (as CPython reports it).
        EXPECT_NE(what.find(mp_test::kWindows ? "exit code 3" : "exit code -6"), std::string::npos) << what;
      }
    } else {
      EXPECT_EQ(results[static_cast<std::size_t>(i)].get(mp::Seconds(30)), i);
    }
  }
  // The worker was replaced: the pool still has its two and runs tasks.
  EXPECT_EQ(pool.map(sqr, mp::range(0L, 10L), 1).size(), 10u);
  // A worker that exits (sys.exit in a task) is a dead worker too.
  EXPECT_THROW(pool.apply(exit_now, 3), mp::ProcessError);
  EXPECT_EQ(pool.apply(sqr, 4L), 16);
  pool.close();
  pool.join();
}

// "t<trial>_<task>" (appended piecewise: gcc 12 at -O3 warns falsely, -Wrestrict, on
// "t" + std::to_string(...) + ...).
std::string trial_file(int trial, int task) {
  std::string name = "t";
  name += std::to_string(trial);
  name += '_';
  name += std::to_string(task);
  return name;
}

// The fault test: SIGKILL the worker running a chosen task, 100 times; the pool never
// hangs, the lost task fails within a second, and every other task completes.
TEST_P(PoolTest, KillingAWorkerMidTaskNeverHangs) {
  MP_SKIP_THREADED_FORK_UNDER_ASAN(GetParam());
  const int trials = std::string(GetParam()) == "fork" ? std::max(10, static_cast<int>(100 * test_scale())) : 15;
  TempDir dir;
  mp::Pool pool(opts(3));
  std::mt19937 rng(12345);
  double worst = 0;
  for (int t = 0; t < trials; ++t) {
    std::vector<mp::AsyncResult<long>> rs;
    const int victim = static_cast<int>(rng() % 4);
    for (int i = 0; i < 4; ++i) {
      std::string path = dir / trial_file(t, i);
      rs.push_back(pool.apply_async(report_and_work, path, static_cast<long>(i), i == victim ? 30.0 : 0.02));
    }
    std::string vpath = dir / trial_file(t, victim);
    ASSERT_TRUE(wait_for_file(vpath)) << "trial " << t;
    int pid = std::stoi(read_file(vpath).value());
    kill_pid(pid);
    auto t0 = Clock::now();
    try {
      rs[static_cast<std::size_t>(victim)].get(mp::Seconds(30));
      ADD_FAILURE() << "trial " << t << ": the killed task did not fail";
    } catch (const mp::ProcessError& e) {
      EXPECT_NE(std::string(e.what()).find("exit code -9"), std::string::npos) << e.what();
    }
    worst = std::max(worst, elapsed_since(t0));
    for (int i = 0; i < 4; ++i) {
      if (i == victim) continue;
      ASSERT_EQ(rs[static_cast<std::size_t>(i)].get(mp::Seconds(30)), i) << "trial " << t;
    }
  }
  EXPECT_LT(worst, 1.0) << "a lost task took " << worst << " s to fail";
  std::printf("%d trials: the slowest lost task failed %.1f ms after the kill\n", trials, worst * 1e3);
  pool.close();
  pool.join();
}

// Workers SIGKILLed at random moments - while taking a task, running it, or sending its result -
// during a long map: the map completes or fails with ProcessError; it never hangs.
TEST_P(PoolTest, RandomKillsDuringMapNeverHang) {
  MP_SKIP_THREADED_FORK_UNDER_ASAN(GetParam());
  mp::Pool pool(opts(2));
  TempDir dir;
  std::vector<long> want(3000);
  std::iota(want.begin(), want.end(), 0L);
  std::vector<std::tuple<std::string, long>> in;
  for (long x : want) in.emplace_back(dir.path(), x);
  std::atomic<bool> stop{false};
  std::atomic<int> kills{0};
  std::thread killer([&] {
    std::mt19937 rng(7);
    while (!stop) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 30));
      std::vector<int> live;  // workers that ran a task lately and still exist
      for (auto& e : std::filesystem::directory_iterator(dir.path())) {
        int pid = std::atoi(e.path().filename().string().c_str());
        if (pid > 0 && mp::platform::process_exists(pid)) live.push_back(pid);
      }
      if (!live.empty() && !stop) {
        kill_pid(live[rng() % live.size()]);
        ++kills;
      }
    }
  });
  int completed = 0, failed = 0;
  for (int round = 0; round < 5; ++round) {
    if (round == 3) {  // the last rounds run undisturbed: the pool has recovered
      stop = true;
      killer.join();
    }
    auto r = pool.starmap_async(spin_briefly, in, 10);
    try {
      auto got = r.get(mp::Seconds(60));
      EXPECT_EQ(got, want);
      ++completed;
    } catch (const mp::TimeoutError&) {
      ADD_FAILURE() << "a map hung after a worker was killed";
      break;
    } catch (const mp::ProcessError&) {
      ++failed;
    }
  }
  if (killer.joinable()) {
    stop = true;
    killer.join();
  }
  EXPECT_EQ(completed + failed, 5);
  EXPECT_GE(completed, 2);
  std::printf("%d workers killed; %d maps completed, %d failed\n", kills.load(), completed, failed);
  EXPECT_EQ(pool.apply(sqr, 6L), 36);
}

// A Pool never closed nor destroyed (leaked) when its process exits: the exit ends the daemonic
// workers, the pool does not replace them, and the process exits promptly.
void leak_a_pool(std::string method, std::string path) {
  auto* pool = new mp::Pool(mp::PoolOptions{.processes = 2, .context = &mp::get_context(method)});
  auto pids = pool->map(pid_of_worker, mp::range(0, 20), 1);
  std::string text;
  for (int p : std::set<int>(pids.begin(), pids.end())) text += std::to_string(p) + " ";
  write_file(path, text);
}

TEST_P(PoolTest, APoolLeftAliveAtExit) {
  TempDir dir;
  mp::Process p(mp::ProcessOptions{.context = &ctx()}, leak_a_pool, std::string(GetParam()), dir / "pids");
  p.start();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  auto text = read_file(dir / "pids");
  ASSERT_TRUE(text);
  std::istringstream in(*text);
  int pid = 0;
  while (in >> pid) EXPECT_TRUE(wait_process_ended(pid, std::chrono::seconds(10))) << "worker " << pid << " outlived its pool";
}

INSTANTIATE_TEST_SUITE_P(Methods, PoolTest, testing::Values("fork", "spawn", "forkserver"));

// ---- mp::range: Python's range() -----------------------------------------------------------------
TEST(Range, AsPythons) {
  auto to_vec = [](auto r) { return std::vector<long>(r.begin(), r.end()); };
  EXPECT_EQ(to_vec(mp::range(5L)), (std::vector<long>{0, 1, 2, 3, 4}));
  EXPECT_EQ(to_vec(mp::range(2L, 5L)), (std::vector<long>{2, 3, 4}));
  EXPECT_EQ(to_vec(mp::range(2L, 10L, 3L)), (std::vector<long>{2, 5, 8}));
  EXPECT_EQ(to_vec(mp::range(10L, 0L, -4L)), (std::vector<long>{10, 6, 2}));
  EXPECT_TRUE(mp::range(5, 2).empty());
  EXPECT_EQ(mp::range(0).size(), 0u);
  EXPECT_EQ(mp::range(-3).size(), 0u);
  EXPECT_EQ(mp::range(1, 11, 2).size(), 5u);
  EXPECT_EQ(mp::range(0, 10, 3)[3], 9);
  EXPECT_THROW(mp::range(0, 10, 0), mp::ValueError);
  auto r = mp::range(0, 100, 7);
  EXPECT_EQ(static_cast<std::size_t>(r.end() - r.begin()), r.size());
}

// ---- ThreadPool ----------------------------------------------------------------------------------
TEST(ThreadPool, SameSurface) {
  mp::ThreadPool pool(3);
  int captured = 10;
  EXPECT_EQ(pool.apply([captured](int x) { return x + captured; }, 5), 15);
  std::vector<int> in(100);
  std::iota(in.begin(), in.end(), 0);
  auto sq = pool.map([](int x) { return x * x; }, in);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sq[static_cast<std::size_t>(i)], i * i);
  std::vector<std::tuple<int, int>> pairs{{1, 2}, {3, 4}};
  EXPECT_EQ(pool.starmap([](int a, int b) { return a * b; }, pairs), (std::vector<int>{2, 12}));
  std::vector<int> got;
  for (int v : pool.imap([](int x) { return x + 1; }, mp::range(0, 50), 4)) got.push_back(v);
  ASSERT_EQ(got.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], i + 1);
  std::multiset<int> un;
  for (int v : pool.imap_unordered([](int x) { return x; }, mp::range(0, 50))) un.insert(v);
  EXPECT_EQ(un.size(), 50u);
  EXPECT_THROW(pool.apply([](int) -> int { throw std::out_of_range("x"); }, 1), std::out_of_range);
  // Arguments that could never cross a process boundary are fine here.
  auto ptr = std::make_unique<int>(7);
  EXPECT_EQ(pool.apply([p = ptr.get()] { return *p; }), 7);
  auto t0 = Clock::now();
  auto slow = pool.apply_async([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return 1;
  });
  EXPECT_THROW(slow.get(mp::Seconds(0.05)), mp::TimeoutError);
  EXPECT_EQ(slow.get(mp::Seconds(30)), 1);
  EXPECT_LT(elapsed_since(t0), 10.0);
  pool.close();
  EXPECT_THROW(pool.apply([] { return 1; }), mp::ValueError);
  pool.join();
}

TEST(ThreadPool, InitializerRunsInEachThread) {
  std::atomic<int> inits{0};
  mp::ThreadPool pool(mp::PoolOptions{.processes = 4, .initializer = mp::Initializer([&inits] { ++inits; })});
  pool.map([](int x) { return x; }, mp::range(0, 10));
  pool.close();
  pool.join();
  EXPECT_EQ(inits.load(), 4);
}

}  // namespace
