// ProcessPoolExecutor, Future, as_completed, wait: CPython's concurrent.futures cases
// (Lib/test/test_concurrent_futures: ProcessPoolExecutorTest, FutureTests, WaitTests,
// AsCompletedTests, ExecutorShutdownTest) under every start method, and a broken pool.
#include "test_helpers.hpp"

#include <mp/futures.hpp>
#include <mp/mp.hpp>

#include <atomic>
#include <numeric>
#include <set>
#include <thread>

namespace {

using namespace mp_test;

long sqr(long x) { return x * x; }
long mul(long x, long y) { return x * y; }
long sleep_and_return(long x, double seconds) {
  std::this_thread::sleep_for(mp::Seconds(seconds));
  return x;
}
int pid_of_worker() { return static_cast<int>(::getpid()); }
int raise_value_error(int) { throw mp::ValueError("bad value"); }
void crash_after(double seconds) {
  std::this_thread::sleep_for(mp::Seconds(seconds));
  std::abort();
}
void exit_worker(int code) { std::_Exit(code); }

int g_init = 0;
void init_worker(int v) { g_init = v; }
int read_init() { return g_init; }

class ExecutorTest : public mp_test::MethodTest<const char*> {
 protected:
  mp::ExecutorOptions opts(int n) { return mp::ExecutorOptions{.max_workers = n, .mp_context = &mp::get_context(GetParam())}; }
};

TEST_P(ExecutorTest, Submit) {
  mp::ProcessPoolExecutor ex(opts(2));
  auto f = ex.submit(mul, 2L, 8L);
  EXPECT_EQ(f.result(mp::Seconds(30)), 16);
  EXPECT_TRUE(f.done());
  EXPECT_FALSE(f.running());
  EXPECT_FALSE(f.cancelled());
  EXPECT_EQ(f.exception(), nullptr);
  auto lam = ex.submit([](int a) { return a + 1; }, 41);
  EXPECT_EQ(lam.result(mp::Seconds(30)), 42);
  auto e = ex.submit(raise_value_error, 1);
  EXPECT_THROW(e.result(mp::Seconds(30)), mp::ValueError);
  auto ep = e.exception();
  ASSERT_TRUE(ep);
  EXPECT_THROW(std::rethrow_exception(ep), mp::ValueError);
  EXPECT_EQ(ex.max_workers(), 2);
}

TEST_P(ExecutorTest, ResultTimeoutAndDoneCallback) {
  mp::ProcessPoolExecutor ex(opts(2));
  auto f = ex.submit(sleep_and_return, 5L, 0.3);
  EXPECT_THROW(f.result(mp::Seconds(0.05)), mp::TimeoutError);
  EXPECT_THROW(f.exception(mp::Seconds(0.01)), mp::TimeoutError);
  std::atomic<long> seen{0};
  f.add_done_callback([&](const mp::Future<long>& done) { seen = done.result(); });
  EXPECT_EQ(f.result(mp::Seconds(30)), 5);
  for (int i = 0; i < 100 && seen.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(seen.load(), 5);
  // Added after completion: runs at once, in this thread.
  bool now = false;
  f.add_done_callback([&](const mp::Future<long>&) { now = true; });
  EXPECT_TRUE(now);
}

TEST_P(ExecutorTest, Map) {
  mp::ProcessPoolExecutor ex(opts(2));
  std::vector<long> want;
  for (long i = 0; i < 50; ++i) want.push_back(i * i);
  EXPECT_EQ(ex.map(sqr, mp::range(0L, 50L)).to_vector(), want);
  EXPECT_EQ(ex.map(sqr, mp::range(0L, 50L), std::nullopt, 7).to_vector(), want);
  std::vector<long> got;
  for (long v : ex.map(sqr, mp::range(0L, 50L), mp::Seconds(30), 5)) got.push_back(v);
  EXPECT_EQ(got, want);
  EXPECT_THROW(ex.map(sqr, std::vector<long>{1}, std::nullopt, 0), mp::ValueError);
  EXPECT_TRUE(ex.map(sqr, std::vector<long>{}).to_vector().empty());
  // The exception comes out at its item.
  auto r = ex.map(raise_value_error, std::vector<int>{1, 2});
  EXPECT_THROW(r.next(), mp::ValueError);
  // Timeout: measured from the call to map.
  auto t = ex.map([](long x) { return sleep_and_return(x, 1.0); }, std::vector<long>{1}, mp::Seconds(0.1));
  EXPECT_THROW(t.next(), mp::TimeoutError);
}

TEST_P(ExecutorTest, CancelQueuedWork) {
  mp::ProcessPoolExecutor ex(opts(1));
  // One worker: at most 2 (max_workers + 1) tasks go out; the rest wait here and can be cancelled.
  std::vector<mp::Future<long>> fs;
  for (long i = 0; i < 6; ++i) fs.push_back(ex.submit(sleep_and_return, i, 0.2));
  EXPECT_TRUE(fs[0].running() || fs[0].done());
  EXPECT_FALSE(fs[0].cancel());  // handed out: too late
  EXPECT_TRUE(fs[5].cancel());
  EXPECT_TRUE(fs[5].cancelled());
  EXPECT_TRUE(fs[5].done());
  EXPECT_TRUE(fs[5].cancel());  // again: still true
  EXPECT_THROW(fs[5].result(), mp::CancelledError);
  EXPECT_THROW(fs[5].exception(), mp::CancelledError);
  for (long i = 0; i < 5; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(mp::Seconds(30)), i);
}

TEST_P(ExecutorTest, AsCompleted) {
  mp::ProcessPoolExecutor ex(opts(2));
  std::vector<mp::Future<long>> fs;
  fs.push_back(ex.submit(sleep_and_return, 1L, 0.4));
  fs.push_back(ex.submit(sleep_and_return, 2L, 0.0));
  fs.push_back(fs[1]);  // a duplicate is yielded once
  std::vector<long> order;
  for (const auto& f : mp::as_completed(fs, mp::Seconds(30))) order.push_back(f.result());
  EXPECT_EQ(order, (std::vector<long>{2, 1}));
  auto slow = ex.submit(sleep_and_return, 3L, 0.5);
  auto ac = mp::as_completed(std::vector<mp::Future<long>>{slow}, mp::Seconds(0.1));
  EXPECT_THROW(ac.next(), mp::TimeoutError);
}

TEST_P(ExecutorTest, WaitModes) {
  mp::ProcessPoolExecutor ex(opts(2));
  auto quick = ex.submit(sleep_and_return, 1L, 0.0);
  auto slow = ex.submit(sleep_and_return, 2L, 1.0);
  auto r = mp::wait(std::vector<mp::Future<long>>{quick, slow}, mp::Seconds(30), mp::FIRST_COMPLETED);
  ASSERT_EQ(r.done.size(), 1u);
  EXPECT_TRUE(r.done[0] == quick);
  ASSERT_EQ(r.not_done.size(), 1u);
  auto bad = ex.submit(raise_value_error, 0);
  auto slow2 = ex.submit(sleep_and_return, 3L, 1.5);
  auto e = mp::wait(std::vector<mp::Future<long>>{slow2}, mp::Seconds(0.05), mp::ALL_COMPLETED);
  EXPECT_EQ(e.not_done.size(), 1u);
  auto fe = mp::wait(std::vector<mp::Future<int>>{bad}, mp::Seconds(30), mp::FIRST_EXCEPTION);
  EXPECT_EQ(fe.done.size(), 1u);
  auto all = mp::wait(std::vector<mp::Future<long>>{quick, slow, slow2}, mp::Seconds(30));
  EXPECT_EQ(all.done.size(), 3u);
  EXPECT_TRUE(all.not_done.empty());
}

TEST_P(ExecutorTest, ShutdownVariants) {
  {
    mp::ProcessPoolExecutor ex(opts(2));
    auto f = ex.submit(sleep_and_return, 7L, 0.2);
    ex.shutdown();  // waits
    EXPECT_TRUE(f.done());
    EXPECT_EQ(f.result(), 7);
    EXPECT_THROW(ex.submit(sqr, 1L), mp::RuntimeError);
    ex.shutdown();  // twice is fine
  }
  {
    mp::ProcessPoolExecutor ex(opts(1));
    std::vector<mp::Future<long>> fs;
    for (long i = 0; i < 8; ++i) fs.push_back(ex.submit(sleep_and_return, i, 0.1));
    ex.shutdown(true, true);  // cancel_futures: what had not started is cancelled
    int cancelled = 0, finished = 0;
    for (auto& f : fs) {
      EXPECT_TRUE(f.done());
      (f.cancelled() ? cancelled : finished)++;
    }
    EXPECT_GE(cancelled, 5);
    EXPECT_GE(finished, 1);
  }
  {
    mp::ProcessPoolExecutor ex(opts(2));
    auto f = ex.submit(sleep_and_return, 9L, 0.3);
    auto t0 = Clock::now();
    ex.shutdown(false);  // returns at once; the work still completes
    EXPECT_LT(elapsed_since(t0), 0.25);
    EXPECT_EQ(f.result(mp::Seconds(30)), 9);
  }  // the destructor waits
}

TEST_P(ExecutorTest, InitializerAndMaxTasksPerChild) {
  MP_SKIP_THREADED_FORK_UNDER_ASAN(GetParam());
  {
    mp::ProcessPoolExecutor ex(mp::ExecutorOptions{.max_workers = 2, .mp_context = &mp::get_context(GetParam()),
                                                   .initializer = mp::Initializer(init_worker, 9)});
    for (int i = 0; i < 5; ++i) EXPECT_EQ(ex.submit(read_init).result(mp::Seconds(30)), 9);
  }
  {
    mp::ProcessPoolExecutor ex(mp::ExecutorOptions{.max_workers = 1, .mp_context = &mp::get_context(GetParam()),
                                                   .max_tasks_per_child = 2});
    std::set<int> pids;
    for (int i = 0; i < 6; ++i) pids.insert(ex.submit(pid_of_worker).result(mp::Seconds(30)));
    EXPECT_EQ(pids.size(), 3u);  // one worker, replaced after every 2 tasks; not broken
  }
  EXPECT_THROW(mp::ProcessPoolExecutor(mp::ExecutorOptions{.max_workers = 0}), mp::ValueError);
  EXPECT_THROW(mp::ProcessPoolExecutor(mp::ExecutorOptions{.max_tasks_per_child = 0}), mp::ValueError);
}

TEST_P(ExecutorTest, AWorkerThatDiesBreaksThePool) {
  mp::ProcessPoolExecutor ex(opts(2));
  std::vector<mp::Future<long>> queued;
  auto boom = ex.submit(crash_after, 0.3);  // after the submissions below
  for (long i = 0; i < 10; ++i) queued.push_back(ex.submit(sleep_and_return, i, 5.0));
  ASSERT_TRUE(boom.state().wait(mp::Seconds(30)));
  auto t0 = Clock::now();
  EXPECT_THROW(boom.result(mp::Seconds(30)), mp::BrokenProcessPool);
  for (auto& f : queued) EXPECT_THROW(f.result(mp::Seconds(30)), mp::BrokenProcessPool);
  EXPECT_LT(elapsed_since(t0), 1.0);  // every pending future fails within a second
  EXPECT_THROW(ex.submit(sqr, 1L), mp::BrokenProcessPool);
  try {
    boom.result();
  } catch (const mp::BrokenProcessPool& e) {
    EXPECT_NE(std::string(e.what()).find("terminated abruptly"), std::string::npos) << e.what();
  }
  ex.shutdown();
}

TEST_P(ExecutorTest, AnIdleWorkerExitingBreaksThePoolToo) {
  mp::ProcessPoolExecutor ex(opts(2));
  EXPECT_THROW(ex.submit(exit_worker, 3).result(mp::Seconds(30)), mp::BrokenProcessPool);
  EXPECT_THROW(ex.submit(sqr, 1L), mp::BrokenProcessPool);
}

TEST_P(ExecutorTest, ManyWorkers) {
  // No 61-worker ceiling.
  mp::ProcessPoolExecutor ex(mp::ExecutorOptions{.max_workers = 70, .mp_context = &mp::get_context(GetParam())});
  std::vector<mp::Future<int>> fs;
  for (int i = 0; i < 140; ++i) fs.push_back(ex.submit(pid_of_worker));
  std::set<int> pids;
  for (auto& f : fs) pids.insert(f.result(mp::Seconds(60)));
  EXPECT_GE(pids.size(), 1u);
  EXPECT_EQ(ex.max_workers(), 70);
}

INSTANTIATE_TEST_SUITE_P(Methods, ExecutorTest, testing::Values("fork", "spawn", "forkserver"));

}  // namespace
