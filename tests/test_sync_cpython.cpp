// Ports of CPython's Lib/test/_test_multiprocessing.py _TestLock, _TestSemaphore, _TestCondition,
// _TestEvent and _TestBarrier (and the "lock passed to Condition" cases of Lib/test/lock_tests.py)
// onto the public API. Cases already in test_synchronize.cpp are not repeated. Cross-process cases
// run under every start method (CpySync); the rest are plain tests (CpyLock, CpySemaphore,
// CpyCondition, CpyBarrier).
//
// Adaptations, where CPython's test uses what this API does not have:
// - repr(lock) and lock.locked(): is_mine(), count() and acquire(false) say the same things;
// - Value('i') / _DummyList counters: a Semaphore used as a counter (release = append,
//   get_value = len); Queue: a Pipe written under a Lock;
// - waits CPython leaves unbounded are bounded here (kWait in the parent, kChildWait in children),
//   and children still running when a test ends are killed, so a failure never hangs the suite;
// - a failed assertion inside a child is its exit code (checked by the parent).
#include "test_helpers.hpp"

#include <mp/mp.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using mp_test::elapsed_since;
using Clock = std::chrono::steady_clock;

namespace {

using mp_test::Children;

// CPython's DELTA and TIMEOUT1..3 (their CHECK_TIMINGS = False values) and CLOCK_RES.
constexpr double kDelta = 0.1;
constexpr double kTimeout1 = 0.1;
constexpr double kTimeout2 = 0.1;
constexpr double kTimeout3 = 0.1;
constexpr double kClockRes = 0.1;
// How long the parent waits for anything that should happen "now"; children wait a little longer,
// so that when something goes wrong the parent's assertion is what reports it.
constexpr auto kWait = 10s;
constexpr double kChildWait = 20.0;

class CpySync : public mp_test::MethodTest<std::string> {
 protected:
  mp::Context& ctx() { return mp::get_context(GetParam()); }
};

// CPython's assertReachesEventually: polls until get_value() == value (bounded), then checks it.
void reaches_eventually(const mp::Semaphore& sem, int value) {
  auto deadline = Clock::now() + kWait;
  while (sem.get_value() != value && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(sem.get_value(), value);
}

bool recv_within(mp::Connection& c, int& out) {
  if (!c.poll(mp::Seconds(10))) return false;
  out = c.recv<int>();
  return true;
}

}  // namespace

// ---- _TestLock --------------------------------------------------------------------------------
// (test_lock, test_rlock, test_lock_context, test_rlock_context: test_synchronize.cpp's
// Lock.AcquireReleaseAndMisuse and RLock.RecursionAndOwnership.)
namespace {

// Acquires, reports (is_mine, count) through `conn`, signals `held`, keeps the lock until `done`
// (bounded), releases it. CPython's _acquire / _acquire_event / _test_lock_locked_2processes.
template <class L>
void acquire_report_hold(L lock, mp::Connection conn, mp::Event held, mp::Event done) {
  if (!lock.acquire(true, mp::Seconds(kChildWait))) mp::sys_exit(2);
  conn.send(std::make_pair(lock.is_mine(), lock.count()));
  held.set();
  done.wait(mp::Seconds(kChildWait));
  lock.release();
}

}  // namespace

// test_repr_lock + test_lock_locked_2processes: who owns a Lock, seen from threads and processes.
TEST_P(CpySync, LockOwnerAcrossThreadsAndProcesses) {
  mp::Lock lock = ctx().Lock();
  // <Lock(owner=None)>
  EXPECT_FALSE(lock.is_mine());
  EXPECT_EQ(lock.count(), 0);
  // <Lock(owner=MainProcess)>
  ASSERT_TRUE(lock.acquire());
  EXPECT_TRUE(lock.is_mine());
  EXPECT_EQ(lock.count(), 1);
  lock.release();

  // A thread acquires and ends holding it: <Lock(owner=MainProcess|T1)> inside the thread,
  // <Lock(owner=SomeOtherThread)> from here; a Lock (unlike an RLock) may be released by anyone.
  bool mine_in_thread = false;
  std::thread([&] {
    if (lock.acquire(true, kWait)) mine_in_thread = lock.is_mine();
  }).join();
  EXPECT_TRUE(mine_in_thread);
  EXPECT_FALSE(lock.is_mine());
  EXPECT_GT(lock.count(), 0);
  EXPECT_FALSE(lock.acquire(false));
  EXPECT_NO_THROW(lock.release());
  EXPECT_TRUE(lock.acquire(false));  // really free again
  lock.release();

  // A process: <Lock(owner=P1)> inside it; <Lock(owner=SomeOtherProcess)> and locked() here.
  Children kids;
  auto [reader, writer] = mp::Pipe(false);
  mp::Event held = ctx().Event();
  mp::Event done = ctx().Event();
  kids.start(ctx(), &acquire_report_hold<mp::Lock>, lock, writer, held, done);
  ASSERT_TRUE(held.wait(kWait));
  ASSERT_TRUE(reader.poll(mp::Seconds(10)));
  auto [mine, count] = reader.recv<std::pair<bool, int>>();
  EXPECT_TRUE(mine);  // res.value = lock.locked() in the child
  EXPECT_EQ(count, 1);
  EXPECT_FALSE(lock.is_mine());
  EXPECT_EQ(lock.count(), 0);
  EXPECT_FALSE(lock.acquire(false));  // lock.locked() here
  done.set();
  kids.join_all_ok();
  EXPECT_TRUE(lock.acquire(true, kWait));
  lock.release();
}

namespace {

// CPython's _acquire_release for an RLock: acquire n times, report, hold a moment, release n times.
void rlock_acquire_release(mp::RLock lock, double seconds, mp::Connection conn, int n) {
  for (int i = 0; i < n; ++i) {
    if (!lock.acquire(true, mp::Seconds(kChildWait))) mp::sys_exit(2);
  }
  conn.send(std::make_pair(lock.is_mine(), lock.count()));
  std::this_thread::sleep_for(mp::Seconds(seconds));
  for (int i = 0; i < n; ++i) lock.release();
}

}  // namespace

// test_repr_rlock + test_rlock_locked_2processes: an RLock's owner and recursion count.
TEST_P(CpySync, RLockOwnerAcrossThreadsAndProcesses) {
  mp::RLock lock = ctx().RLock();
  // <RLock(None, 0)>
  EXPECT_FALSE(lock.is_mine());
  EXPECT_EQ(lock.count(), 0);
  // <RLock(MainProcess, 3)>
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(lock.acquire());
  EXPECT_TRUE(lock.is_mine());
  EXPECT_EQ(lock.count(), 3);
  for (int i = 0; i < 3; ++i) lock.release();
  EXPECT_EQ(lock.count(), 0);

  // Threads T1..T3 acquiring 1..3 times: each sees <RLock(MainProcess|Ti, i)>.
  {
    auto pipe = mp::Pipe(false);
    mp::Connection& reader = pipe.first;
    mp::Connection writer = pipe.second;
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i) {
      ts.emplace_back([lock, writer, i] { rlock_acquire_release(lock, 0.1, writer, i + 1); });
    }
    for (auto& t : ts) t.join();
    std::vector<int> counts;
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(reader.poll(mp::Seconds(10)));
      auto [mine, count] = reader.recv<std::pair<bool, int>>();
      EXPECT_TRUE(mine);
      counts.push_back(count);
    }
    std::sort(counts.begin(), counts.end());
    EXPECT_EQ(counts, (std::vector<int>{1, 2, 3}));
  }

  // An RLock left held by a finished thread: <RLock(SomeOtherThread, nonzero)>; not ours to release.
  {
    mp::RLock rlock = ctx().RLock();
    std::thread([rlock]() mutable { rlock.acquire(); }).join();
    EXPECT_FALSE(rlock.is_mine());
    EXPECT_GT(rlock.count(), 0);
    EXPECT_FALSE(rlock.acquire(false));
    EXPECT_THROW(rlock.release(), mp::AssertionError);
  }

  // A process P1 acquiring once: <RLock(P1, 1)> inside it.
  {
    Children kids;
    auto [reader, writer] = mp::Pipe(false);
    kids.start(ctx(), rlock_acquire_release, lock, 0.1, writer, 1);
    ASSERT_TRUE(reader.poll(mp::Seconds(10)));
    auto [mine, count] = reader.recv<std::pair<bool, int>>();
    EXPECT_TRUE(mine);
    EXPECT_EQ(count, 1);
    kids.join_all_ok();
  }

  // An RLock held by another process: <RLock(SomeOtherProcess, nonzero)>, and locked() here.
  {
    mp::RLock rlock = ctx().RLock();
    Children kids;
    auto [reader, writer] = mp::Pipe(false);
    mp::Event held = ctx().Event();
    mp::Event done = ctx().Event();
    kids.start(ctx(), &acquire_report_hold<mp::RLock>, rlock, writer, held, done);
    ASSERT_TRUE(held.wait(kWait));
    ASSERT_TRUE(reader.poll(mp::Seconds(10)));
    auto [mine, count] = reader.recv<std::pair<bool, int>>();
    EXPECT_TRUE(mine);
    EXPECT_EQ(count, 1);
    EXPECT_FALSE(rlock.is_mine());
    EXPECT_EQ(rlock.count(), 0);
    EXPECT_FALSE(rlock.acquire(false));
    EXPECT_THROW(rlock.release(), mp::AssertionError);
    done.set();
    kids.join_all_ok();
    EXPECT_TRUE(rlock.acquire(true, kWait));
    rlock.release();
  }
}

// ---- _TestSemaphore ---------------------------------------------------------------------------
namespace {

// CPython's _test_semaphore.
void check_semaphore_sequence(mp::Semaphore& sem) {
  EXPECT_EQ(sem.get_value(), 2);
  EXPECT_TRUE(sem.acquire());
  EXPECT_EQ(sem.get_value(), 1);
  EXPECT_TRUE(sem.acquire());
  EXPECT_EQ(sem.get_value(), 0);
  EXPECT_FALSE(sem.acquire(false));
  EXPECT_EQ(sem.get_value(), 0);
  sem.release();
  EXPECT_EQ(sem.get_value(), 1);
  sem.release();
  EXPECT_EQ(sem.get_value(), 2);
}

}  // namespace

// test_semaphore
TEST(CpySemaphore, Semaphore) {
  mp::Semaphore sem(2);
  check_semaphore_sequence(sem);
  sem.release();
  EXPECT_EQ(sem.get_value(), 3);
  sem.release();
  EXPECT_EQ(sem.get_value(), 4);
}

// test_bounded_semaphore (with its commented-out HAVE_GETVALUE part, which holds on Linux)
TEST(CpySemaphore, BoundedSemaphore) {
  mp::BoundedSemaphore sem(2);
  check_semaphore_sequence(sem);
  EXPECT_THROW(sem.release(), mp::ValueError);
  EXPECT_EQ(sem.get_value(), 2);
}

// test_timeout (with CHECK_TIMINGS on: the elapsed times are asserted)
TEST(CpySemaphore, Timeout) {
  mp::Semaphore sem(0);
  auto t0 = Clock::now();
  EXPECT_FALSE(sem.acquire(false));
  EXPECT_LT(elapsed_since(t0), kClockRes);

  t0 = Clock::now();
  EXPECT_FALSE(sem.acquire(false, std::nullopt));
  EXPECT_LT(elapsed_since(t0), kClockRes);

  t0 = Clock::now();
  EXPECT_FALSE(sem.acquire(false, mp::Seconds(kTimeout1)));  // a timeout without block: no wait
  EXPECT_LT(elapsed_since(t0), kClockRes);

  t0 = Clock::now();
  EXPECT_FALSE(sem.acquire(true, mp::Seconds(kTimeout2)));
  double e = elapsed_since(t0);
  EXPECT_GE(e, kTimeout2 - 0.01);
  EXPECT_LT(e, kTimeout2 + 2.0);

  t0 = Clock::now();
  EXPECT_FALSE(sem.acquire(true, mp::Seconds(kTimeout3)));
  e = elapsed_since(t0);
  EXPECT_GE(e, kTimeout3 - 0.01);
  EXPECT_LT(e, kTimeout3 + 2.0);
}

// ---- _TestCondition ---------------------------------------------------------------------------
// (test_timeout: test_synchronize.cpp's Condition.WaitNeedsTheLockAndTimesOut, and below for a
// Condition over a passed Lock.)
namespace {

// CPython's _TestCondition.f. timeout < 0 is CPython's None (bounded here by kChildWait; woken is
// then released only when really notified, so a missed notify cannot pass for a wake-up).
void cond_f(mp::Condition cond, mp::Semaphore sleeping, mp::Semaphore woken, double timeout) {
  cond.acquire();
  sleeping.release();
  bool notified = cond.wait(mp::Seconds(timeout < 0 ? kChildWait : timeout));
  if (notified || timeout >= 0) woken.release();
  cond.release();
}

// CPython's check_invariant looks at the Condition's private semaphores: no sleepers left
// (sleeping_count == woken_count) and no stray wake-up token (wait_semaphore == 0). Through the
// public API, in a child so that a broken state (a notify() that would wait for ever) cannot hang
// the test: a notify() with nobody waiting returns, and a wait() then still times out.
void cond_invariant_child(mp::Condition cond) {
  std::lock_guard guard(cond);
  cond.notify();
  cond.notify_all();
  if (cond.wait(mp::Seconds(0.05))) mp::sys_exit(3);
}

void check_invariant(mp::Context& ctx, const mp::Condition& cond) {
  Children kids;
  auto& p = kids.start(ctx, cond_invariant_child, cond);
  ASSERT_TRUE(p.join(kWait)) << "notify() with no waiters blocked: the Condition's state is mucked up";
  EXPECT_EQ(p.exitcode(), 0) << "a wait() was woken with no notify: the Condition's state is mucked up";
}

mp::Condition make_condition(mp::Context& ctx, const std::string& kind) {
  if (kind == "Lock") return ctx.Condition(ctx.Lock());
  if (kind == "RLock") return ctx.Condition(ctx.RLock());
  return ctx.Condition();
}

}  // namespace

// test_notify, for the default Condition and for one over a passed Lock and RLock.
TEST_P(CpySync, ConditionNotify) {
  for (std::string kind : {"default", "Lock", "RLock"}) {
    SCOPED_TRACE("Condition over " + kind);
    mp::Condition cond = make_condition(ctx(), kind);
    mp::Semaphore sleeping = ctx().Semaphore(0);
    mp::Semaphore woken = ctx().Semaphore(0);
    Children kids;
    kids.start(ctx(), cond_f, cond, sleeping, woken, -1.0);
    std::jthread t(cond_f, cond, sleeping, woken, -1.0);

    // wait for both children to start sleeping
    ASSERT_TRUE(sleeping.acquire(true, kWait));
    ASSERT_TRUE(sleeping.acquire(true, kWait));

    // check no process/thread has woken up
    std::this_thread::sleep_for(mp::Seconds(kDelta));
    reaches_eventually(woken, 0);

    // wake up one process/thread
    cond.acquire();
    cond.notify();
    cond.release();
    reaches_eventually(woken, 1);

    // wake up another
    cond.acquire();
    cond.notify();
    cond.release();
    reaches_eventually(woken, 2);

    // check state is not mucked up
    t.join();
    kids.join_all_ok();
    check_invariant(ctx(), cond);
  }
}

// test_notify_all
TEST_P(CpySync, ConditionNotifyAll) {
  mp::Condition cond = ctx().Condition();
  mp::Semaphore sleeping = ctx().Semaphore(0);
  mp::Semaphore woken = ctx().Semaphore(0);
  Children kids;
  std::vector<std::jthread> threads;

  // start some threads/processes which will timeout
  for (int i = 0; i < 3; ++i) {
    kids.start(ctx(), cond_f, cond, sleeping, woken, kTimeout1);
    threads.emplace_back(cond_f, cond, sleeping, woken, kTimeout1);
  }
  // wait for them all to sleep
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(sleeping.acquire(true, kWait));
  // check they have all timed out
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(woken.acquire(true, kWait));
  EXPECT_EQ(woken.get_value(), 0);
  for (auto& t : threads) t.join();
  kids.join_all_ok();
  // check state is not mucked up
  check_invariant(ctx(), cond);

  // start some more threads/processes
  Children more;
  threads.clear();
  for (int i = 0; i < 3; ++i) {
    more.start(ctx(), cond_f, cond, sleeping, woken, -1.0);
    threads.emplace_back(cond_f, cond, sleeping, woken, -1.0);
  }
  // wait for them to all sleep
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(sleeping.acquire(true, kWait));
  // check no process/thread has woken up
  std::this_thread::sleep_for(mp::Seconds(kDelta));
  EXPECT_EQ(woken.get_value(), 0);

  // wake them all up
  cond.acquire();
  cond.notify_all();
  cond.release();

  // check they have all woken
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(woken.acquire(true, kWait));
  EXPECT_EQ(woken.get_value(), 0);
  for (auto& t : threads) t.join();
  more.join_all_ok();
  // check state is not mucked up
  check_invariant(ctx(), cond);
}

// test_notify_n
TEST_P(CpySync, ConditionNotifyN) {
  mp::Condition cond = ctx().Condition();
  mp::Semaphore sleeping = ctx().Semaphore(0);
  mp::Semaphore woken = ctx().Semaphore(0);
  Children kids;
  std::vector<std::jthread> threads;

  // start some threads/processes
  for (int i = 0; i < 3; ++i) {
    kids.start(ctx(), cond_f, cond, sleeping, woken, -1.0);
    threads.emplace_back(cond_f, cond, sleeping, woken, -1.0);
  }
  // wait for them to all sleep
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(sleeping.acquire(true, kWait));
  // check no process/thread has woken up
  std::this_thread::sleep_for(mp::Seconds(kDelta));
  EXPECT_EQ(woken.get_value(), 0);

  // wake some of them up
  cond.acquire();
  cond.notify(2);
  cond.release();
  // check 2 have woken
  reaches_eventually(woken, 2);
  std::this_thread::sleep_for(mp::Seconds(kDelta));
  EXPECT_EQ(woken.get_value(), 2);  // and no more

  // wake the rest of them
  cond.acquire();
  cond.notify(4);
  cond.release();
  reaches_eventually(woken, 6);

  // doesn't do anything more
  cond.acquire();
  cond.notify(3);
  cond.release();
  EXPECT_EQ(woken.get_value(), 6);

  for (auto& t : threads) t.join();
  kids.join_all_ok();
  // check state is not mucked up
  check_invariant(ctx(), cond);
}

namespace {

// CPython's Value('i', -1) as a Semaphore: value() - 1.
int state_value(const mp::Semaphore& state) { return state.get_value() - 1; }

// CPython's _test_waitfor_f.
void waitfor_f(mp::Condition cond, mp::Semaphore state) {
  std::lock_guard guard(cond);
  state.release();  // state.value = 0
  cond.notify();
  bool result = cond.wait_for([&] { return state_value(state) == 4; }, mp::Seconds(kChildWait));
  if (!result || state_value(state) != 4) mp::sys_exit(1);
}

// CPython's _test_waitfor_timeout_f (here the state counts from 0).
void waitfor_timeout_f(mp::Condition cond, mp::Semaphore state, mp::Semaphore success, mp::Semaphore sem) {
  sem.release();
  std::lock_guard guard(cond);
  const double expected = 0.100;
  auto t0 = Clock::now();
  bool result = cond.wait_for([&] { return state.get_value() == 4; }, mp::Seconds(expected));
  double dt = elapsed_since(t0);
  if (!result && (expected - kClockRes) <= dt) success.release();
}

// CPython's _test_wait_result (without the SIGINT, which has no C++ counterpart).
void wait_result_f(mp::Condition c) {
  std::lock_guard guard(c);
  c.notify();
}

}  // namespace

// test_waitfor
TEST_P(CpySync, ConditionWaitFor) {
  mp::Condition cond = ctx().Condition();
  mp::Semaphore state = ctx().Semaphore(0);  // Value('i', -1)
  Children kids;
  auto& p = kids.start(ctx(), waitfor_f, cond, state);
  {
    std::lock_guard guard(cond);
    bool result = cond.wait_for([&] { return state_value(state) == 0; }, kWait);
    EXPECT_TRUE(result);
    EXPECT_EQ(state_value(state), 0);
  }
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(10ms);
    std::lock_guard guard(cond);
    state.release();  // state.value += 1
    cond.notify();
  }
  ASSERT_TRUE(p.join(kWait));
  EXPECT_EQ(p.exitcode(), 0);
}

// test_waitfor_timeout
TEST_P(CpySync, ConditionWaitForTimeout) {
  mp::Condition cond = ctx().Condition();
  mp::Semaphore state = ctx().Semaphore(0);
  mp::Semaphore success = ctx().Semaphore(0);
  mp::Semaphore sem = ctx().Semaphore(0);
  Children kids;
  auto& p = kids.start(ctx(), waitfor_timeout_f, cond, state, success, sem);
  ASSERT_TRUE(sem.acquire(true, kWait));
  // Only increment 3 times, so state == 4 is never reached.
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(10ms);
    std::lock_guard guard(cond);
    state.release();
    cond.notify();
  }
  ASSERT_TRUE(p.join(kWait));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(success.get_value(), 1);
}

// test_wait_result
TEST_P(CpySync, ConditionWaitResult) {
  mp::Condition c = ctx().Condition();
  Children kids;
  std::lock_guard guard(c);
  EXPECT_FALSE(c.wait(0s));
  EXPECT_FALSE(c.wait(0.1s));
  auto& p = kids.start(ctx(), wait_result_f, c);
  EXPECT_TRUE(c.wait(kWait));
  ASSERT_TRUE(p.join(kWait));
  EXPECT_EQ(p.exitcode(), 0);
}

// The "lock passed to Condition" cases (lock_tests.py's ConditionTests.test_acquire,
// test_unacquired_wait, test_unacquired_notify, and _TestCondition.test_timeout) for a Lock.
TEST(CpyCondition, OverAPassedLock) {
  mp::Lock lock;
  mp::Condition cond(lock);
  EXPECT_THROW(cond.wait(0.01s), mp::AssertionError);  // unacquired wait
  EXPECT_THROW(cond.notify(), mp::AssertionError);     // unacquired notify
  EXPECT_THROW(cond.notify_all(), mp::AssertionError);
  ASSERT_TRUE(cond.acquire());
  EXPECT_FALSE(cond.acquire(false));  // a Lock is not recursive
  EXPECT_TRUE(lock.is_mine());        // it is the very lock passed in
  EXPECT_FALSE(lock.acquire(false));
  auto t0 = Clock::now();
  EXPECT_FALSE(cond.wait(mp::Seconds(kTimeout1)));
  EXPECT_GE(elapsed_since(t0), kTimeout1 - 0.01);
  EXPECT_TRUE(lock.is_mine());  // reacquired after the wait
  cond.release();
  EXPECT_TRUE(lock.acquire(false));  // released through the Condition
  EXPECT_FALSE(cond.acquire(false));
  lock.release();
}

// The same for a passed RLock: recursion, and wait() releasing every level then restoring them.
TEST(CpyCondition, OverAPassedRLock) {
  mp::RLock lock;
  mp::Condition cond(lock);
  ASSERT_TRUE(cond.acquire());
  ASSERT_TRUE(cond.acquire());  // recursive
  EXPECT_EQ(lock.count(), 2);
  std::atomic<bool> got{false};
  std::jthread t([cond, &got]() mutable {
    if (cond.acquire(true, mp::Seconds(10))) {  // only possible while the waiter released both levels
      got = true;
      cond.notify();
      cond.release();
    }
  });
  EXPECT_TRUE(cond.wait(kWait));
  EXPECT_TRUE(got);
  EXPECT_TRUE(lock.is_mine());
  EXPECT_EQ(lock.count(), 2);
  cond.release();
  cond.release();
  EXPECT_THROW(cond.release(), mp::AssertionError);
}

// A Condition over a lock shares that lock with the other processes too: holding the lock
// (not the Condition) here keeps a child out of the Condition.
namespace {
void try_cond_then_report(mp::Condition cond, mp::Connection conn) {
  bool first = cond.acquire(true, mp::Seconds(0.1));  // held by the parent through the bare lock
  if (first) cond.release();
  conn.send(first ? 1 : 0);
  bool second = cond.acquire(true, mp::Seconds(kChildWait));  // released by then
  if (second) cond.release();
  conn.send(second ? 1 : 0);
}
}  // namespace

TEST_P(CpySync, ConditionSharesThePassedLockWithChildren) {
  mp::Lock lock = ctx().Lock();
  mp::Condition cond = ctx().Condition(lock);
  auto [reader, writer] = mp::Pipe(false);
  Children kids;
  ASSERT_TRUE(lock.acquire());
  auto& p = kids.start(ctx(), try_cond_then_report, cond, writer);
  int first = -1;
  ASSERT_TRUE(recv_within(reader, first));
  EXPECT_EQ(first, 0);
  lock.release();
  int second = -1;
  ASSERT_TRUE(recv_within(reader, second));
  EXPECT_EQ(second, 1);
  ASSERT_TRUE(p.join(kWait));
  EXPECT_EQ(p.exitcode(), 0);
}

// ---- _TestEvent -------------------------------------------------------------------------------
namespace {
// CPython's _test_event.
void event_f(mp::Event event) {
  std::this_thread::sleep_for(mp::Seconds(kTimeout2));
  event.set();
}
}  // namespace

// test_event (with its timings asserted)
TEST_P(CpySync, Event) {
  mp::Event event = ctx().Event();
  EXPECT_FALSE(event.is_set());

  auto t0 = Clock::now();
  EXPECT_FALSE(event.wait(0s));
  EXPECT_LT(elapsed_since(t0), kClockRes);
  t0 = Clock::now();
  EXPECT_FALSE(event.wait(mp::Seconds(kTimeout1)));
  EXPECT_GE(elapsed_since(t0), kTimeout1 - 0.01);

  event.set();
  EXPECT_TRUE(event.is_set());
  t0 = Clock::now();
  EXPECT_TRUE(event.wait());
  EXPECT_LT(elapsed_since(t0), kClockRes);
  t0 = Clock::now();
  EXPECT_TRUE(event.wait(mp::Seconds(kTimeout1)));
  EXPECT_LT(elapsed_since(t0), kClockRes);

  event.clear();
  EXPECT_FALSE(event.is_set());

  Children kids;
  auto& p = kids.start(ctx(), event_f, event);
  EXPECT_TRUE(event.wait(kWait));
  ASSERT_TRUE(p.join(kWait));
  EXPECT_EQ(p.exitcode(), 0);
}

// ---- _TestBarrier -----------------------------------------------------------------------------
// CPython runs each case's function in N-1 processes (a Bunch) and in the test's own process. The
// functions here return 0, or a code saying which of CPython's assertions failed; in a child that
// code is the exit code.
namespace {

constexpr int kN = 5;                     // _TestBarrier.N
constexpr double kDefaultTimeout = 10.0;  // _TestBarrier.defaultTimeout (30 s there)

template <auto F>
struct AsChild;
template <class... A, int (*F)(A...)>
struct AsChild<F> {
  static void main(A... args) {
    int rc = F(args...);
    if (rc != 0) mp::sys_exit(rc);
  }
};

// The barrier(s) of one case: aborted when the case ends (CPython's tearDown), so no party is left
// waiting; the children are killed if still alive (Children).
struct Parties {
  std::vector<mp::Barrier> barriers;
  Children kids;
  Parties() = default;
  Parties(const Parties&) = delete;
  Parties& operator=(const Parties&) = delete;
  ~Parties() {
    for (auto& b : barriers) {
      try {
        b.abort();
      } catch (...) {
      }
    }
  }
};

// CPython's run_threads: F in N-1 children and here; then waits for the children.
template <auto F, class... A>
void run_parties(mp::Context& ctx, Parties& parties, A... args) {
  for (int i = 0; i < kN - 1; ++i) parties.kids.start(ctx, &AsChild<F>::main, args...);
  int rc = -1;
  try {
    rc = F(args...);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "the test process's party threw: " << e.what();
  }
  EXPECT_EQ(rc, 0) << "the test process's party failed";
  parties.kids.join_all_ok();
}

mp::Barrier default_barrier(mp::Context& ctx, Parties& parties) {
  parties.barriers.push_back(ctx.Barrier(kN, mp::Timeout{mp::Seconds(kDefaultTimeout)}));
  return parties.barriers.back();
}

// CPython's multipass (results[0], results[1] as counters).
int multipass(mp::Barrier barrier, mp::Semaphore results0, mp::Semaphore results1, int n) {
  int m = barrier.parties();
  if (m != kN) return 10;
  for (int i = 0; i < n; ++i) {
    results0.release();
    if (results1.get_value() != i * m) return 11;
    barrier.wait();
    results1.release();
    if (results0.get_value() != (i + 1) * m) return 12;
    barrier.wait();
  }
  if (barrier.n_waiting() != 0) return 13;
  if (barrier.broken()) return 14;
  return 0;
}

// CPython's _test_wait_return_f (the Queue: a Pipe written under a Lock).
int wait_return_f(mp::Barrier barrier, mp::Connection conn, mp::Lock lock) {
  int res = barrier.wait();
  std::lock_guard guard(lock);
  conn.send(res);
  return 0;
}

// CPython's AppendTrue.
struct AppendTrue {
  mp::Semaphore obj;
  void operator()() { obj.release(); }
  template <class A>
  void serialize(A& a) { a(obj); }
};
MP_TASK_TYPE(AppendTrue);

// CPython's _test_action_f.
int action_f(mp::Barrier barrier, mp::Semaphore results) {
  barrier.wait();
  if (results.get_value() != 1) return 20;  // the action ran before anyone was released
  return 0;
}

// CPython's _test_abort_f.
int abort_f(mp::Barrier barrier, mp::Semaphore results1, mp::Semaphore results2) {
  try {
    int i = barrier.wait();
    if (i == kN / 2) {
      barrier.abort();  // raise RuntimeError ... except RuntimeError: barrier.abort()
      return 0;
    }
    barrier.wait();
    results1.release();
  } catch (const mp::BrokenBarrierError&) {
    results2.release();
  }
  return 0;
}

// CPython's _test_reset_f.
int reset_f(mp::Barrier barrier, mp::Semaphore results1, mp::Semaphore results2, mp::Semaphore results3) {
  int i = barrier.wait();
  if (i == kN / 2) {
    // Wait until the other threads are all in the barrier.
    auto deadline = Clock::now() + mp::Seconds(kChildWait);
    while (barrier.n_waiting() < kN - 1) {
      if (Clock::now() > deadline) return 30;
      std::this_thread::sleep_for(1ms);
    }
    barrier.reset();
  } else {
    try {
      barrier.wait();
      results1.release();
    } catch (const mp::BrokenBarrierError&) {
      results2.release();
    }
  }
  // Now, pass the barrier again
  barrier.wait();
  results3.release();
  return 0;
}

// CPython's _test_abort_and_reset_f.
int abort_and_reset_f(mp::Barrier barrier, mp::Barrier barrier2, mp::Semaphore results1,
                      mp::Semaphore results2, mp::Semaphore results3) {
  try {
    int i = barrier.wait();
    if (i == kN / 2) throw std::runtime_error("RuntimeError");
    barrier.wait();
    results1.release();
  } catch (const mp::BrokenBarrierError&) {
    results2.release();
  } catch (const std::runtime_error&) {
    barrier.abort();
  }
  // Synchronize and reset the barrier.  Must synchronize first so that everyone has left it when
  // we reset, and after so that no one enters it before the reset.
  if (barrier2.wait() == kN / 2) barrier.reset();
  barrier2.wait();
  barrier.wait();
  results3.release();
  return 0;
}

// CPython's _test_timeout_f: a late party (1.0 s late, 0.5 s timeout there; 0.6 / 0.3 here).
int timeout_f(mp::Barrier barrier, mp::Semaphore results) {
  int i = barrier.wait();
  if (i == kN / 2) std::this_thread::sleep_for(600ms);  // One thread is late!
  try {
    barrier.wait(mp::Seconds(0.3));
  } catch (const mp::BrokenBarrierError&) {
    results.release();
  }
  return 0;
}

// CPython's _test_default_timeout_f.
int default_timeout_f(mp::Barrier barrier, mp::Semaphore results) {
  int i = barrier.wait(mp::Seconds(kDefaultTimeout));
  if (i == kN / 2) std::this_thread::sleep_for(600ms);  // later than the default timeout
  try {
    barrier.wait();
  } catch (const mp::BrokenBarrierError&) {
    results.release();
  }
  return 0;
}

// CPython's _test_thousand_f.
void thousand_f(mp::Barrier barrier, int passes, mp::Connection conn, mp::Lock lock) {
  for (int i = 0; i < passes; ++i) {
    barrier.wait();
    std::lock_guard guard(lock);
    conn.send(i);
  }
}

}  // namespace

// test_barrier
TEST_P(CpySync, Barrier) {
  Parties parties;
  mp::Barrier barrier = default_barrier(ctx(), parties);
  mp::Semaphore r0 = ctx().Semaphore(0);
  mp::Semaphore r1 = ctx().Semaphore(0);
  run_parties<multipass>(ctx(), parties, barrier, r0, r1, 1);
  EXPECT_EQ(r0.get_value(), kN);
  EXPECT_EQ(r1.get_value(), kN);
}

// test_barrier_10
TEST_P(CpySync, Barrier10) {
  Parties parties;
  mp::Barrier barrier = default_barrier(ctx(), parties);
  mp::Semaphore r0 = ctx().Semaphore(0);
  mp::Semaphore r1 = ctx().Semaphore(0);
  run_parties<multipass>(ctx(), parties, barrier, r0, r1, 10);
  EXPECT_EQ(r0.get_value(), 10 * kN);
  EXPECT_EQ(r1.get_value(), 10 * kN);
}

// test_wait_return
TEST_P(CpySync, BarrierWaitReturn) {
  Parties parties;
  mp::Barrier barrier = default_barrier(ctx(), parties);
  auto [reader, writer] = mp::Pipe(false);
  mp::Lock lock = ctx().Lock();
  run_parties<wait_return_f>(ctx(), parties, barrier, writer, lock);
  std::vector<int> results;
  for (int i = 0; i < kN; ++i) {
    int v = -1;
    ASSERT_TRUE(recv_within(reader, v));
    results.push_back(v);
  }
  EXPECT_EQ(std::count(results.begin(), results.end(), 0), 1);
  std::sort(results.begin(), results.end());
  EXPECT_EQ(results, (std::vector<int>{0, 1, 2, 3, 4}));
}

// test_action
TEST_P(CpySync, BarrierAction) {
  Parties parties;
  mp::Semaphore results = ctx().Semaphore(0);
  parties.barriers.push_back(ctx().Barrier(kN, AppendTrue{results}, mp::Seconds(kDefaultTimeout)));
  mp::Barrier barrier = parties.barriers.back();
  run_parties<action_f>(ctx(), parties, barrier, results);
  EXPECT_EQ(results.get_value(), 1);
}

// test_abort
TEST_P(CpySync, BarrierAbort) {
  Parties parties;
  mp::Barrier barrier = default_barrier(ctx(), parties);
  mp::Semaphore results1 = ctx().Semaphore(0);
  mp::Semaphore results2 = ctx().Semaphore(0);
  run_parties<abort_f>(ctx(), parties, barrier, results1, results2);
  EXPECT_EQ(results1.get_value(), 0);
  EXPECT_EQ(results2.get_value(), kN - 1);
  EXPECT_TRUE(barrier.broken());
}

// test_reset
TEST_P(CpySync, BarrierReset) {
  Parties parties;
  mp::Barrier barrier = default_barrier(ctx(), parties);
  mp::Semaphore results1 = ctx().Semaphore(0);
  mp::Semaphore results2 = ctx().Semaphore(0);
  mp::Semaphore results3 = ctx().Semaphore(0);
  run_parties<reset_f>(ctx(), parties, barrier, results1, results2, results3);
  EXPECT_EQ(results1.get_value(), 0);
  EXPECT_EQ(results2.get_value(), kN - 1);
  EXPECT_EQ(results3.get_value(), kN);
}

// test_abort_and_reset
TEST_P(CpySync, BarrierAbortAndReset) {
  Parties parties;
  mp::Barrier barrier = default_barrier(ctx(), parties);
  parties.barriers.push_back(ctx().Barrier(kN, mp::Timeout{mp::Seconds(kDefaultTimeout)}));
  mp::Barrier barrier2 = parties.barriers.back();
  mp::Semaphore results1 = ctx().Semaphore(0);
  mp::Semaphore results2 = ctx().Semaphore(0);
  mp::Semaphore results3 = ctx().Semaphore(0);
  run_parties<abort_and_reset_f>(ctx(), parties, barrier, barrier2, results1, results2, results3);
  EXPECT_EQ(results1.get_value(), 0);
  EXPECT_EQ(results2.get_value(), kN - 1);
  EXPECT_EQ(results3.get_value(), kN);
}

// test_timeout
TEST_P(CpySync, BarrierTimeout) {
  Parties parties;
  mp::Barrier barrier = default_barrier(ctx(), parties);
  mp::Semaphore results = ctx().Semaphore(0);
  run_parties<timeout_f>(ctx(), parties, barrier, results);
  EXPECT_EQ(results.get_value(), barrier.parties());
}

// test_default_timeout
TEST_P(CpySync, BarrierDefaultTimeout) {
  Parties parties;
  parties.barriers.push_back(ctx().Barrier(kN, mp::Timeout{mp::Seconds(0.3)}));
  mp::Barrier barrier = parties.barriers.back();
  mp::Semaphore results = ctx().Semaphore(0);
  run_parties<default_timeout_f>(ctx(), parties, barrier, results);
  EXPECT_EQ(results.get_value(), barrier.parties());
}

// test_single_thread
TEST(CpyBarrier, SingleThread) {
  mp::Barrier b(1);
  EXPECT_EQ(b.wait(), 0);
  EXPECT_EQ(b.wait(), 0);
  EXPECT_FALSE(b.broken());
}

// test_thousand (1000 passes there; scaled by MP_TEST_SCALE here, at least 50)
TEST_P(CpySync, BarrierThousand) {
  const int passes = std::max(50, static_cast<int>(1000 * mp_test::test_scale()));
  Parties parties;
  mp::Barrier barrier = default_barrier(ctx(), parties);
  mp::Lock lock = ctx().Lock();
  auto [conn, child_conn] = mp::Pipe(false);
  for (int j = 0; j < kN; ++j) parties.kids.start(ctx(), thousand_f, barrier, passes, child_conn, lock);
  for (int i = 0; i < passes; ++i) {
    for (int j = 0; j < kN; ++j) {
      int v = -1;
      ASSERT_TRUE(recv_within(conn, v)) << "pass " << i;
      ASSERT_EQ(v, i) << "pass " << i;
    }
  }
  parties.kids.join_all_ok();
}

INSTANTIATE_TEST_SUITE_P(Methods, CpySync, testing::Values("fork", "spawn", "forkserver"));
