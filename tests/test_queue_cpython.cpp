// Ports of the queue cases of CPython's Lib/test/_test_multiprocessing.py onto the public API:
// _TestQueue, TestSimpleQueue, the queue-using cases of _TestProcess, TestStartMethod and
// TestStdinBadfiledescriptor. Cases already in test_queues.cpp are not repeated (test_timeout is
// Queue.EmptyAndTimeouts there). Cross-process cases run under every start method (CpyQueue); the
// rest are plain tests (CpyQueueLocal, CpySimpleQueue).
//
// Adaptations, where CPython's test uses what this API does not have:
// - items are typed: Queue<int> for numbers, std::optional<int> where CPython puts None;
// - CPython's put() of an unpicklable object returns and its feeder thread reports the error
//   (test_queue_feeder_donot_stop_onexc); here the item is encoded in the caller, so that put()
//   throws and nothing is put;
// - assertTimingAlmostEqual: the immediate calls must return within a second, the timed ones
//   after their timeout and within a second of it;
// - calls CPython makes without a timeout are made without one here too (that is what they test),
//   under a Watchdog that ends the test binary with a message if one does not return; every other
//   wait is bounded (kWait in the parent, kChildWait in children), and children still running when
//   a test ends are killed;
// - a failed check inside a child is its exit code (checked by the parent).
// Not ported: test_no_import_lock_contention (no import lock in C++), test_queue_feeder_on_queue_
// feeder_error (no _on_queue_feeder_error hook: the caller gets the exception), the first half of
// test_mixed_startmethod (nothing to refuse: these queues have no names), test_forked_thread_not_
// started (a std::thread cannot exist unstarted), the Manager and threads (dummy) variants.
#include "test_helpers.hpp"

#include <mp/mp.hpp>
#include <mp/queues.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using mp_test::Clock;
using mp_test::elapsed_since;

namespace {

using mp_test::Children;

// CPython's DELTA and TIMEOUT1..3 (their CHECK_TIMINGS = False values).
constexpr double kDelta = 0.1;
constexpr double kTimeout1 = 0.1;
constexpr double kTimeout2 = 0.1;
constexpr double kTimeout3 = 0.1;
// How long the parent waits for anything that should happen "now"; children wait a little longer,
// so that when something goes wrong the parent's assertion is what reports it.
constexpr auto kWait = 10s;
constexpr double kChildWait = 20.0;
// support.SHORT_TIMEOUT, shortened.
constexpr auto kShortTimeout = 5s;

class CpyQueue : public mp_test::MethodTest<std::string> {
 protected:
  mp::Context& ctx() { return mp::get_context(GetParam()); }
};

// Ends the test binary with a message if the scope is not left within `seconds`: guards the calls
// that CPython makes without a timeout (and that must therefore be made without one here).
class Watchdog {
 public:
  Watchdog(double seconds, std::string what)
      : thread_([this, seconds, what = std::move(what)] {
          std::unique_lock lock(mutex_);
          if (!cv_.wait_for(lock, mp::Seconds(seconds), [&] { return done_; })) {
            std::fprintf(stderr, "watchdog: %s did not finish within %.0f s\n", what.c_str(), seconds);
            std::fflush(stderr);
            std::_Exit(97);
          }
        }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: starts once the members it uses exist
};

const mp::ProcessOptions kDaemon{.daemon = true};

// Runs `f` and returns how long it took.
template <class F>
double timed(F&& f) {
  auto t0 = Clock::now();
  f();
  return elapsed_since(t0);
}

// assertTimingAlmostEqual(elapsed, expected), with room for a busy machine above.
void expect_timing(double elapsed, double expected) {
  EXPECT_GE(elapsed, expected - 0.01);
  EXPECT_LT(elapsed, expected + 1.0);
}

// CPython's close_queue(): Queue and JoinableQueue only (not SimpleQueue).
template <class Q>
void close_queue(Q& q) {
  q.close();
  q.join_thread();
}

// A check inside a child: its failure is the child's exit code.
void require(bool ok, int code) {
  if (!ok) mp::sys_exit(code);
}

}  // namespace

// ---- _TestQueue -------------------------------------------------------------------------------
namespace {

void queue_test_put_child(mp::Queue<int> queue, mp::Event child_can_start, mp::Event parent_can_continue) {
  require(child_can_start.wait(mp::Seconds(kChildWait)), 2);
  for (int i = 0; i < 6; ++i) (void)queue.get(true, mp::Seconds(kChildWait));
  parent_can_continue.set();
}

}  // namespace

// test_put
TEST_P(CpyQueue, Put) {
  constexpr int kMaxsize = 6;
  auto queue = ctx().Queue<int>(kMaxsize);
  mp::Event child_can_start = ctx().Event();
  mp::Event parent_can_continue = ctx().Event();
  Children kids;
  mp::Process& proc = kids.start(ctx(), kDaemon, queue_test_put_child, queue, child_can_start, parent_can_continue);

  EXPECT_TRUE(queue.empty());
  EXPECT_FALSE(queue.full());

  {
    Watchdog dog(10, "put() with room");
    queue.put(1);
    queue.put(2, true);
    queue.put(3, true, std::nullopt);
    queue.put(4, false);
    queue.put(5, false, std::nullopt);
    queue.put_nowait(6);
  }

  // the values may be in buffer but not yet in pipe so sleep a bit
  std::this_thread::sleep_for(mp::Seconds(kDelta));

  EXPECT_FALSE(queue.empty());
  EXPECT_TRUE(queue.full());

  expect_timing(timed([&] { EXPECT_THROW(queue.put(7, false), mp::Full); }), 0);
  expect_timing(timed([&] { EXPECT_THROW(queue.put(7, false, std::nullopt), mp::Full); }), 0);
  expect_timing(timed([&] { EXPECT_THROW(queue.put_nowait(7), mp::Full); }), 0);
  expect_timing(timed([&] { EXPECT_THROW(queue.put(7, true, mp::Seconds(kTimeout1)), mp::Full); }), kTimeout1);
  expect_timing(timed([&] { EXPECT_THROW(queue.put(7, false, mp::Seconds(kTimeout2)), mp::Full); }), 0);
  expect_timing(timed([&] { EXPECT_THROW(queue.put(7, true, mp::Seconds(kTimeout3)), mp::Full); }), kTimeout3);

  child_can_start.set();
  ASSERT_TRUE(parent_can_continue.wait(kWait));

  EXPECT_TRUE(queue.empty());
  EXPECT_FALSE(queue.full());

  ASSERT_TRUE(proc.join(kWait));
  EXPECT_EQ(proc.exitcode(), 0);
  close_queue(queue);
}

namespace {

void queue_test_get_child(mp::Queue<int> queue, mp::Event child_can_start, mp::Event parent_can_continue) {
  require(child_can_start.wait(mp::Seconds(kChildWait)), 2);
  // queue.put(1)  (commented out in CPython too)
  queue.put(2);
  queue.put(3);
  queue.put(4);
  queue.put(5);
  parent_can_continue.set();
}

}  // namespace

// test_get
TEST_P(CpyQueue, Get) {
  auto queue = ctx().Queue<int>();
  mp::Event child_can_start = ctx().Event();
  mp::Event parent_can_continue = ctx().Event();
  Children kids;
  mp::Process& proc = kids.start(ctx(), kDaemon, queue_test_get_child, queue, child_can_start, parent_can_continue);

  EXPECT_TRUE(queue.empty());

  child_can_start.set();
  ASSERT_TRUE(parent_can_continue.wait(kWait));

  std::this_thread::sleep_for(mp::Seconds(kDelta));
  EXPECT_FALSE(queue.empty());

  {
    Watchdog dog(10, "get() of items already put");
    EXPECT_EQ(queue.get(true, std::nullopt), 2);
    EXPECT_EQ(queue.get(true), 3);
  }
  EXPECT_EQ(queue.get(true, mp::Seconds(1)), 4);
  EXPECT_EQ(queue.get_nowait(), 5);

  EXPECT_TRUE(queue.empty());

  expect_timing(timed([&] { EXPECT_THROW(queue.get(false), mp::Empty); }), 0);
  expect_timing(timed([&] { EXPECT_THROW(queue.get(false, std::nullopt), mp::Empty); }), 0);
  expect_timing(timed([&] { EXPECT_THROW(queue.get_nowait(), mp::Empty); }), 0);
  expect_timing(timed([&] { EXPECT_THROW(queue.get(true, mp::Seconds(kTimeout1)), mp::Empty); }), kTimeout1);
  expect_timing(timed([&] { EXPECT_THROW(queue.get(false, mp::Seconds(kTimeout2)), mp::Empty); }), 0);
  expect_timing(timed([&] { EXPECT_THROW(queue.get(true, mp::Seconds(kTimeout3)), mp::Empty); }), kTimeout3);

  ASSERT_TRUE(proc.join(kWait));
  EXPECT_EQ(proc.exitcode(), 0);
  close_queue(queue);
}

namespace {

// test_fork's items. CPython's feeder thread runs from the first put(); here small items go straight
// into the ring, so the first item of each process is larger than a ring record may be: the
// parent's feeder thread is running when the child is forked, and the child must start its own.
std::string fork_item(int i) {
  std::string s = std::to_string(i) + ":";
  if (i == 0 || i == 10) s.resize(300 * 1024, 'x');
  return s;
}

void queue_test_fork_child(mp::Queue<std::string> queue) {
  for (int i = 10; i < 20; ++i) queue.put(fork_item(i));
  // note that at this point the items may only be buffered, so the process cannot shutdown until
  // the feeder thread has finished pushing items onto the pipe.
}

std::string item_label(const std::string& s) { return s.substr(0, s.find(':')); }

}  // namespace

// test_fork: old versions of Queue would fail to create a new feeder thread for a forked process
// if the original process had its own feeder thread.
TEST_P(CpyQueue, Fork) {
#if defined(__SANITIZE_THREAD__)
  if (GetParam() == "fork") {
    GTEST_SKIP() << "ThreadSanitizer cannot follow a fork while the feeder thread runs (\"dup thread with used "
                    "id\" in the child); the plain and ASan builds run this case";
  }
#endif
  auto queue = ctx().Queue<std::string>();

  // put items on queue so that main process starts a feeder thread
  for (int i = 0; i < 10; ++i) queue.put(fork_item(i));

  // wait to make sure thread starts before we fork a new process
  std::this_thread::sleep_for(mp::Seconds(kDelta));

  Children kids;
  mp::Process& p = kids.start(ctx(), kDaemon, queue_test_fork_child, queue);

  // check that all expected items are in the queue
  {
    Watchdog dog(30, "get() of the 20 items");
    for (int i = 0; i < 20; ++i) {
      std::string got = queue.get();
      EXPECT_EQ(item_label(got), std::to_string(i));
      EXPECT_EQ(got, fork_item(i));
    }
  }
  EXPECT_THROW(queue.get(false), mp::Empty);

  ASSERT_TRUE(p.join(kWait));
  EXPECT_EQ(p.exitcode(), 0);
  close_queue(queue);
}

// test_qsize
TEST(CpyQueueLocal, Qsize) {
  mp::Queue<int> q;
  EXPECT_EQ(q.qsize(), 0u);
  q.put(1);
  EXPECT_EQ(q.qsize(), 1u);
  q.put(5);
  EXPECT_EQ(q.qsize(), 2u);
  (void)q.get(true, kWait);
  EXPECT_EQ(q.qsize(), 1u);
  (void)q.get(true, kWait);
  EXPECT_EQ(q.qsize(), 0u);
  close_queue(q);
}

namespace {

// for obj in iter(q.get, None): time.sleep(DELTA); q.task_done()
// (`done` counts the items processed, so that a join() that returns early is seen.)
void queue_test_task_done_child(mp::JoinableQueue<std::optional<int>> q, mp::Value<int> done) {
  for (;;) {
    std::optional<int> obj = q.get(true, mp::Seconds(kChildWait));
    if (!obj) break;
    std::this_thread::sleep_for(mp::Seconds(kDelta));
    {
      std::lock_guard guard(done.get_lock());
      done.value(done.value() + 1);
    }
    q.task_done();
  }
}

}  // namespace

// test_task_done
TEST_P(CpyQueue, TaskDone) {
  auto queue = ctx().JoinableQueue<std::optional<int>>();
  mp::Value<int> done(0, true, &ctx());

  constexpr int kWorkers = 4;
  Children workers;
  for (int i = 0; i < kWorkers; ++i) workers.start(ctx(), kDaemon, queue_test_task_done_child, queue, done);

  for (int i = 0; i < 10; ++i) queue.put(i);

  {
    Watchdog dog(30, "JoinableQueue::join()");
    queue.join();
  }
  EXPECT_EQ(done.value(), 10) << "join() returned before every item was task_done()";

  for (int i = 0; i < kWorkers; ++i) queue.put(std::nullopt);

  workers.join_all_ok();
  close_queue(queue);
}

namespace {

// CPython's NotSerializable: its __reduce__ raises AttributeError. Here encoding it throws.
struct NotSerializable {
  template <class Archive>
  void serialize(Archive&) {
    throw std::runtime_error("NotSerializable cannot be encoded");
  }
};
using MaybeBool = std::variant<bool, NotSerializable>;

bool is_true(const MaybeBool& v) { return std::holds_alternative<bool>(v) && std::get<bool>(v); }

}  // namespace

// test_queue_feeder_donot_stop_onexc (bpo-30414, bpo-33078): an item that cannot be encoded does
// not break the queue, nor use up a slot of a bounded one. Here the put() itself throws.
TEST(CpyQueueLocal, QueueFeederDoNotStopOnExc) {
  Watchdog dog(20, "QueueFeederDoNotStopOnExc");
  {
    mp::Queue<MaybeBool> q;
    EXPECT_THROW(q.put(NotSerializable{}), std::runtime_error);
    q.put(true);
    EXPECT_TRUE(is_true(q.get(true, kShortTimeout)));
    close_queue(q);
  }
  {
    // bpo-33078: verify that the queue size is correctly handled on errors.
    mp::Queue<MaybeBool> q(1);
    EXPECT_THROW(q.put(NotSerializable{}), std::runtime_error);
    q.put(true);  // blocks for ever if the failed put() kept its slot
    EXPECT_EQ(q.qsize(), 1u);
    EXPECT_TRUE(is_true(q.get(true, kShortTimeout)));
    // Check that the size of the queue is correct
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.qsize(), 0u);
    close_queue(q);
  }
  {
    // The same with an item that cannot travel in a queue (it carries an OS handle).
    mp::Queue<std::variant<bool, mp::Connection>> q(1);
    auto [a, b] = mp::Pipe();
    EXPECT_THROW(q.put(a), mp::ValueError);
    q.put(true);
    EXPECT_EQ(q.qsize(), 1u);
    auto got = q.get(true, kShortTimeout);
    EXPECT_TRUE(std::holds_alternative<bool>(got) && std::get<bool>(got));
    EXPECT_TRUE(q.empty());
    close_queue(q);
  }
  {
    // And a JoinableQueue does not count the failed item as unfinished: join() returns.
    mp::JoinableQueue<MaybeBool> q;
    EXPECT_THROW(q.put(NotSerializable{}), std::runtime_error);
    q.join();
    q.put(true);
    EXPECT_TRUE(is_true(q.get(true, kShortTimeout)));
    q.task_done();
    q.join();
    EXPECT_THROW(q.task_done(), mp::ValueError);
    close_queue(q);
  }
}

// test_closed_queue_empty_exceptions, first half: an unused closed queue is empty, and close() and
// join_thread() on it are harmless.
TEST(CpyQueueLocal, ClosedUnusedQueueIsEmpty) {
  {
    mp::Queue<std::string> q;
    q.close();
    q.join_thread();
    EXPECT_TRUE(q.empty());
  }
  {
    mp::JoinableQueue<std::string> q;
    q.close();
    q.join_thread();
    EXPECT_TRUE(q.empty());
  }
}

// test_closed_queue_empty_exceptions, second half: empty() on a used queue after close() and
// join_thread() raises (CPython: OSError "handle is closed"; here the "use after close()" error,
// mp::ValueError).
TEST(CpyQueueLocal, ClosedUsedQueueEmptyRaises) {
  {
    mp::Queue<std::string> q;
    q.put("foo");  // make sure that the queue is 'used'
    q.close();
    q.join_thread();
    try {
      (void)q.empty();
      ADD_FAILURE() << "Queue: empty() after close() did not throw";
    } catch (const mp::ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("is closed"), std::string::npos) << e.what();
    }
  }
  {
    mp::JoinableQueue<std::string> q;
    q.put("foo");
    q.close();
    q.join_thread();
    try {
      (void)q.empty();
      ADD_FAILURE() << "JoinableQueue: empty() after close() did not throw";
    } catch (const mp::ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("is closed"), std::string::npos) << e.what();
    }
  }
}

namespace {

template <class Q>
void expect_closed_put_get(Q& q) {
  try {
    q.put("foo");
    ADD_FAILURE() << "put() after close() did not throw";
  } catch (const mp::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("is closed"), std::string::npos) << e.what();
  }
  try {
    (void)q.get();
    ADD_FAILURE() << "get() after close() did not throw";
  } catch (const mp::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("is closed"), std::string::npos) << e.what();
  }
}

}  // namespace

// test_closed_queue_put_get_exceptions
TEST(CpyQueueLocal, ClosedQueuePutGetExceptions) {
  Watchdog dog(10, "put()/get() on a closed queue");
  {
    mp::Queue<std::string> q;
    q.close();
    expect_closed_put_get(q);
  }
  {
    mp::JoinableQueue<std::string> q;
    q.close();
    expect_closed_put_get(q);
  }
}

// ---- TestSimpleQueue --------------------------------------------------------------------------
namespace {

void simple_queue_test_empty_child(mp::SimpleQueue<bool> queue, mp::Event child_can_start,
                                   mp::Event parent_can_continue) {
  require(child_can_start.wait(mp::Seconds(kChildWait)), 2);
  // issue 30301, could fail under spawn and forkserver
  struct Finally {
    mp::Event& e;
    ~Finally() { e.set(); }
  } finally{parent_can_continue};
  queue.put(queue.empty());
  queue.put(queue.empty());
}

}  // namespace

// TestSimpleQueue.test_empty
TEST_P(CpyQueue, SimpleQueueEmpty) {
  auto queue = ctx().SimpleQueue<bool>();
  mp::Event child_can_start = ctx().Event();
  mp::Event parent_can_continue = ctx().Event();
  Children kids;
  mp::Process& proc =
      kids.start(ctx(), kDaemon, simple_queue_test_empty_child, queue, child_can_start, parent_can_continue);

  EXPECT_TRUE(queue.empty());

  child_can_start.set();
  ASSERT_TRUE(parent_can_continue.wait(kWait));

  EXPECT_FALSE(queue.empty());
  {
    Watchdog dog(10, "SimpleQueue::get() of items already put");
    EXPECT_EQ(queue.get(), true);
    EXPECT_EQ(queue.get(), false);
  }
  EXPECT_TRUE(queue.empty());

  ASSERT_TRUE(proc.join(kWait));
  EXPECT_EQ(proc.exitcode(), 0);
}

// TestSimpleQueue.test_empty_exceptions: empty() on a closed SimpleQueue raises, used or not
// (CPython: OSError "is closed"; here mp::ValueError).
TEST(CpySimpleQueue, EmptyExceptions) {
  mp::SimpleQueue<int> q;
  q.close();  // close the pipe
  try {
    (void)q.empty();
    ADD_FAILURE() << "empty() after close() did not throw";
  } catch (const mp::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("is closed"), std::string::npos) << e.what();
  }
}

// TestSimpleQueue.test_close: closing a queue twice should not fail.
TEST(CpySimpleQueue, Close) {
  mp::SimpleQueue<int> queue;
  queue.close();
  EXPECT_NO_THROW(queue.close());
}

// TestSimpleQueue.test_closed (CPython checks its private _reader/_writer): after close() both
// ends are closed, so get() and put() raise.
TEST(CpySimpleQueue, Closed) {
  Watchdog dog(10, "SimpleQueue put()/get() after close()");
  mp::SimpleQueue<int> queue;
  queue.put(1);
  queue.close();
  EXPECT_THROW((void)queue.get(), mp::ValueError);
  EXPECT_THROW(queue.put(2), mp::ValueError);
}

// ---- _TestProcess, TestStartMethod, TestStdinBadfiledescriptor: their queue cases ------------
namespace {

void child_fd_inflation_child(mp::Event evt, mp::Queue<int> q) {
  q.put(mp_test::count_open_fds());
  require(evt.wait(mp::Seconds(kChildWait)), 2);
}

}  // namespace

// _TestProcess.test_child_fd_inflation: the number of fds in child processes should not grow with
// the number of running children.
TEST_P(CpyQueue, ChildFdInflation) {
  if (GetParam() == "fork") {
    // The fork method by design inherits all fds from the parent, trying to go against it is a
    // lost battle
    GTEST_SKIP() << "test not appropriate for fork";
  }
  constexpr int N = 5;
  mp::Event evt = ctx().Event();
  auto q = ctx().Queue<int>();

  Children kids;
  for (int i = 0; i < N; ++i) kids.start(ctx(), {}, child_fd_inflation_child, evt, q);

  std::vector<int> fd_counts;
  for (int i = 0; i < N; ++i) fd_counts.push_back(q.get(true, kWait));
  EXPECT_EQ(std::set<int>(fd_counts.begin(), fd_counts.end()).size(), 1u)
      << "fd counts: " << testing::PrintToString(fd_counts);
  EXPECT_GT(fd_counts.front(), 0);

  evt.set();
  kids.join_all_ok();
  close_queue(q);
}

namespace {

void put_one_in_queue(mp::Queue<int> queue) { queue.put(1); }

void put_two_and_nest_once(mp::Queue<int> queue, std::string method) {
  queue.put(2);
  auto process = mp::get_context(method).Process(put_one_in_queue, queue);
  process.start();
  require(process.join(mp::Seconds(kChildWait)), 2);
  require(process.exitcode() == 0, 3);
}

}  // namespace

// TestStartMethod.test_nested_startmethod (gh-108520): a child process can pass its arguments (the
// queue) on to a process of its own.
TEST_P(CpyQueue, NestedStartMethod) {
  auto queue = ctx().Queue<int>();

  Children kids;
  mp::Process& process = kids.start(ctx(), {}, put_two_and_nest_once, queue, GetParam());
  ASSERT_TRUE(process.join(kWait));
  EXPECT_EQ(process.exitcode(), 0);

  std::vector<int> results;
  while (!queue.empty() && results.size() < 10) results.push_back(queue.get(true, kWait));

  // gh-109706: queue.put(1) can write into the queue before queue.put(2), there is no
  // synchronization in the test.
  EXPECT_EQ(results.size(), 2u);
  EXPECT_EQ(std::set<int>(results.begin(), results.end()), (std::set<int>{1, 2}));
}

namespace {

// CPython's target there is close_queue itself; the item lets the parent see the child got that far.
void put_then_close_queue(mp::Queue<std::string> queue, std::string who) {
  queue.put(who);
  close_queue(queue);
}

}  // namespace

// TestStartMethod.test_mixed_startmethod: a queue of any context with a process of any start
// method. (CPython refuses a fork context's queue in a spawn or forkserver child, because its
// SemLocks have no names; these queues have nothing named, so every combination works.)
TEST(CpyQueueLocal, MixedStartMethod) {
  for (const auto& queue_method : mp::get_all_start_methods()) {
    for (const auto& process_method : mp::get_all_start_methods()) {
      SCOPED_TRACE(queue_method + " queue, " + process_method + " process");
      auto queue = mp::get_context(queue_method).Queue<std::string>();
      auto& process_ctx = mp::get_context(process_method);
      Children kids;
      mp::Process& p = kids.start(process_ctx, {}, put_then_close_queue, queue, process_method);
      ASSERT_TRUE(p.join(kWait));
      EXPECT_EQ(p.exitcode(), 0);
      EXPECT_EQ(queue.get(true, kWait), process_method);
    }
  }
}

namespace {

// Issue 5155, 5313, 5331: a process that makes a queue and a process of its own.
void this_sub_process(mp::Queue<int> q) {
  try {
    (void)q.get(false);
  } catch (const mp::Empty&) {
  }
}

void test_process(std::string method) {
  auto& ctx = mp::get_context(method);
  auto queue = ctx.Queue<int>();
  auto sub_proc = ctx.Process(kDaemon, this_sub_process, queue);
  sub_proc.start();
  require(sub_proc.join(mp::Seconds(kChildWait)), 2);
  require(sub_proc.exitcode() == 0, 3);
}

}  // namespace

// TestStdinBadfiledescriptor.test_queue_in_process
TEST_P(CpyQueue, QueueInProcess) {
  Children kids;
  mp::Process& proc = kids.start(ctx(), {}, test_process, GetParam());
  ASSERT_TRUE(proc.join(kWait));
  EXPECT_EQ(proc.exitcode(), 0);
}

// ---- join_thread() (the docs' semantics; CPython's test suite has no case of its own) ---------
namespace {

void put_close_join_thread(mp::Queue<int> q, int n, mp::Event put_done, mp::Event flushed, mp::Event never) {
  for (int i = 0; i < n; ++i) q.put(i);
  put_done.set();
  q.close();
  q.join_thread();  // returns once every item put is in the queue (nothing left in the buffer)
  flushed.set();
  (void)never.wait(mp::Seconds(kChildWait));  // killed here
}

}  // namespace

// "join_thread(): ... blocks until the background thread exits, ensuring that all data in the
// buffer has been flushed". A child puts about twice what the queue holds, so about half of its
// items wait in its buffer: its join_thread() must not return while nobody reads. Once it has
// returned (this process reading meanwhile), the child is SIGKILLed at once: every item not yet
// read must be in the queue, none lost with the child's buffer.
TEST_P(CpyQueue, JoinThreadFlushesTheBuffer) {
  const int n = 150000;
  auto q = ctx().Queue<int>();
  mp::Event put_done = ctx().Event();
  mp::Event flushed = ctx().Event();
  mp::Event never = ctx().Event();
  Children kids;
  mp::Process& p = kids.start(ctx(), {}, put_close_join_thread, q, n, put_done, flushed, never);
  ASSERT_TRUE(put_done.wait(kWait));
  EXPECT_FALSE(flushed.wait(mp::Seconds(0.3))) << "join_thread() returned with items still in the buffer";
  int got = 0;
  auto t0 = Clock::now();
  while (!flushed.is_set() && got < n) {
    ASSERT_LT(elapsed_since(t0), 30.0) << "the child's join_thread() did not return";
    ASSERT_EQ(q.get(true, kWait), got);
    ++got;
  }
  ASSERT_TRUE(flushed.wait(kWait)) << "the child's join_thread() did not return";
  p.kill();
  ASSERT_TRUE(p.join(kWait));
  EXPECT_EQ(p.exitcode(), -9);
  for (; got < n; ++got) {
    try {
      ASSERT_EQ(q.get_nowait(), got);
    } catch (const mp::Empty&) {
      FAIL() << "item " << got << " of " << n << " was lost: not in the queue when join_thread() returned";
    }
  }
  EXPECT_THROW(q.get_nowait(), mp::Empty);
}

INSTANTIATE_TEST_SUITE_P(Methods, CpyQueue, testing::Values("fork", "spawn", "forkserver"));
