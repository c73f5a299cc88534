// Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event (CPython's _TestLock, _TestSemaphore,
// _TestCondition, _TestEvent), within a process and across processes under every start method.
#include <mp/mp.hpp>

#include <gtest/gtest.h>

#include "test_platform.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

using namespace std::chrono_literals;

namespace {

class SyncTest : public mp_test::MethodTest<std::string> {
 protected:
  mp::Context& ctx() { return mp::get_context(GetParam()); }
};

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// CPython's test_notify child: announce sleeping, wait on the condition, announce woken.
void cond_waiter(mp::Condition cond, mp::Semaphore sleeping, mp::Semaphore woken, double timeout) {
  std::lock_guard guard(cond);
  sleeping.release();
  if (cond.wait(mp::Seconds(timeout))) woken.release();
}

void hold_then_release(mp::Lock lock, mp::Event held, double seconds) {
  lock.acquire();
  held.set();
  std::this_thread::sleep_for(mp::Seconds(seconds));
  lock.release();
}

// Takes the lock (`depth` times for an RLock) and never lets go: it is killed holding it.
template <class L>
void hold_forever(L lock, mp::Event held, int depth) {
  for (int i = 0; i < depth; ++i) lock.acquire();
  held.set();
  std::this_thread::sleep_for(60s);
}

// Another process takes a lock whose holder died: sends {acquired, owner_died, seconds}.
template <class L>
void take_over(L lock, mp::Connection report) {
  auto t0 = std::chrono::steady_clock::now();
  bool ok = lock.acquire(true, mp::Seconds(20));
  double took = since(t0);
  bool died = ok && lock.owner_died();
  report.send(std::make_tuple(ok, died, took));
  if (ok) lock.release();
}

void set_after(mp::Event e, double seconds) {
  std::this_thread::sleep_for(mp::Seconds(seconds));
  e.set();
}

void count_up(mp::Lock lock, mp::Semaphore done, std::string path, int times) {
  for (int i = 0; i < times; ++i) {
    std::lock_guard guard(lock);
    // A read-modify-write of a file, correct only under the lock.
    int v = 0;
    if (FILE* f = std::fopen(path.c_str(), "r")) {
      if (std::fscanf(f, "%d", &v) != 1) v = 0;
      std::fclose(f);
    }
    FILE* f = std::fopen(path.c_str(), "w");
    std::fprintf(f, "%d", v + 1);
    std::fclose(f);
  }
  done.release();
}

void wait_for_flag(mp::Condition cond, mp::Semaphore state, mp::Semaphore result) {
  std::lock_guard guard(cond);
  bool ok = cond.wait_for([&] { return state.get_value() >= 4; }, mp::Seconds(30));
  if (ok) result.release();
}

}  // namespace

TEST(Lock, AcquireReleaseAndMisuse) {
  mp::Lock lock;
  EXPECT_TRUE(lock.acquire());
  EXPECT_FALSE(lock.acquire(false));
  EXPECT_FALSE(lock.acquire(true, 0.05s));
  lock.release();
  EXPECT_THROW(lock.release(), mp::ValueError);  // released too many times
  {
    std::lock_guard guard(lock);  // Lockable
    EXPECT_FALSE(lock.try_lock());
  }
  EXPECT_TRUE(lock.try_lock_for(10ms));
  lock.unlock();
  std::unique_lock ul(lock, std::defer_lock);
  EXPECT_TRUE(ul.try_lock_until(std::chrono::steady_clock::now() + 10ms));
}

TEST(RLock, RecursionAndOwnership) {
  mp::RLock lock;
  EXPECT_TRUE(lock.acquire());
  EXPECT_TRUE(lock.acquire());
  EXPECT_TRUE(lock.acquire(false));
  EXPECT_EQ(lock.count(), 3);
  lock.release();
  lock.release();
  lock.release();
  EXPECT_THROW(lock.release(), mp::AssertionError);  // not owned
  lock.acquire();
  std::thread other([&] {
    EXPECT_FALSE(lock.acquire(false));  // owned by another thread
    EXPECT_THROW(lock.release(), mp::AssertionError);
  });
  other.join();
  lock.release();
  std::scoped_lock both(lock);  // Lockable with scoped_lock
}

TEST(Semaphore, CountsAndTimeouts) {
  mp::Semaphore sem(2);
  EXPECT_EQ(sem.get_value(), 2);
  EXPECT_TRUE(sem.acquire());
  EXPECT_EQ(sem.get_value(), 1);
  EXPECT_TRUE(sem.acquire(false));
  EXPECT_FALSE(sem.acquire(false));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(sem.acquire(true, 0.1s));
  EXPECT_GE(since(t0), 0.09);
  EXPECT_FALSE(sem.acquire(true, mp::Seconds(-1)));  // negative timeout: no wait
  sem.release();
  sem.release();
  sem.release();  // an unbounded Semaphore may exceed its initial value
  EXPECT_EQ(sem.get_value(), 3);
  EXPECT_THROW(mp::Semaphore(-1), mp::ValueError);
}

TEST(BoundedSemaphore, RefusesToExceedItsValue) {
  mp::BoundedSemaphore sem(2);
  EXPECT_TRUE(sem.acquire());
  sem.release();
  EXPECT_THROW(sem.release(), mp::ValueError);
  EXPECT_EQ(sem.get_value(), 2);
}

TEST(Condition, WaitNeedsTheLockAndTimesOut) {
  mp::Condition cond;
  EXPECT_THROW(cond.wait(0.01s), mp::AssertionError);
  EXPECT_THROW(cond.notify(), mp::AssertionError);
  std::lock_guard guard(cond);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(cond.wait(0.1s));
  EXPECT_GE(since(t0), 0.09);
  EXPECT_TRUE(cond.get_lock().is_mine());  // reacquired after the wait
}

TEST(Condition, ThreadsWaitForAPredicate) {
  mp::Condition cond(mp::Lock{});
  mp::Semaphore state(0);
  std::atomic<bool> done{false};
  std::thread t([&] {
    std::lock_guard guard(cond);
    done = cond.wait_for([&] { return state.get_value() >= 2; }, mp::Seconds(30));
  });
  for (int i = 0; i < 2; ++i) {
    std::this_thread::sleep_for(20ms);
    std::lock_guard guard(cond);
    state.release();
    cond.notify_all();
  }
  t.join();
  EXPECT_TRUE(done);
  std::lock_guard guard(cond);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(cond.wait_for([] { return false; }, 0.1s));
  EXPECT_GE(since(t0), 0.09);
}

TEST(Event, SetClearWait) {
  mp::Event e;
  EXPECT_FALSE(e.is_set());
  EXPECT_FALSE(e.wait(0s));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(e.wait(0.1s));
  EXPECT_GE(since(t0), 0.09);
  e.set();
  EXPECT_TRUE(e.is_set());
  EXPECT_TRUE(e.wait());
  EXPECT_TRUE(e.wait(0s));
  e.set();  // twice is fine
  EXPECT_TRUE(e.is_set());
  e.clear();
  EXPECT_FALSE(e.is_set());
  EXPECT_FALSE(e.wait(0s));
}

TEST_P(SyncTest, LockExcludesAcrossProcesses) {
  mp::Lock lock = ctx().Lock();
  mp::Semaphore done = ctx().Semaphore(0);
  char tmpl[] = "/tmp/mp-lock-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  close(fd);
  std::vector<mp::Process> procs;
  for (int i = 0; i < 3; ++i) {
    procs.push_back(ctx().Process(count_up, lock, done, std::string(tmpl), 100));
    procs.back().start();
  }
  for (auto& p : procs) {
    ASSERT_TRUE(p.join(60s));
    EXPECT_EQ(p.exitcode(), 0);
  }
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(done.acquire(false));
  FILE* f = std::fopen(tmpl, "r");
  int v = 0;
  ASSERT_EQ(std::fscanf(f, "%d", &v), 1);
  std::fclose(f);
  std::remove(tmpl);
  EXPECT_EQ(v, 300);
}

TEST_P(SyncTest, LockHeldByAChildTimesOutThenIsFree) {
  mp::Lock lock = ctx().Lock();
  mp::Event held = ctx().Event();
  auto p = ctx().Process(hold_then_release, lock, held, 0.3);
  p.start();
  ASSERT_TRUE(held.wait(30s));
  EXPECT_FALSE(lock.acquire(true, 0.05s));
  EXPECT_TRUE(lock.acquire(true, 30s));
  lock.release();
  ASSERT_TRUE(p.join(30s));
}

// Fault test: a Lock holder is SIGKILLed. A process already blocked in acquire() and a process
// that arrives later both get it within 2 s (one after the other), and learn the holder died.
template <class L>
void check_owner_death(mp::Context& ctx, L lock, int depth) {
  mp::Event held = ctx.Event();
  auto holder = ctx.Process(hold_forever<L>, lock, held, depth);
  holder.start();
  ASSERT_TRUE(held.wait(30s));
  EXPECT_FALSE(lock.acquire(true, 0.2s)) << "the holder is alive: the lock is held";
  EXPECT_FALSE(lock.owner_died());

  // A waiter in this process, asleep in acquire() when the holder dies.
  std::atomic<bool> waiter_ok{false}, waiter_died{false};
  std::atomic<double> waiter_took{-1};
  std::atomic<bool> release_now{false};
  std::thread waiter([&] {
    auto t0 = std::chrono::steady_clock::now();
    bool ok = lock.acquire(true, 20s);
    const double took = since(t0);
    waiter_ok = ok;
    waiter_died = ok && lock.owner_died();
    waiter_took = took;  // last: the test reads the other two once this is set
    while (ok && !release_now) std::this_thread::sleep_for(1ms);
    if (ok) lock.release();
  });
  std::this_thread::sleep_for(150ms);
  auto killed_at = std::chrono::steady_clock::now();
  holder.kill();
  ASSERT_TRUE(holder.join(30s));
  EXPECT_EQ(holder.exitcode(), -9);
  while (waiter_took < 0 && since(killed_at) < 25) std::this_thread::sleep_for(1ms);
  double after_kill = since(killed_at);
  EXPECT_TRUE(waiter_ok);
  EXPECT_TRUE(waiter_died) << "the new holder must learn the previous one died";
  EXPECT_LE(after_kill, 2.0) << "taken over " << after_kill << " s after the kill";

  // A process arriving while the waiter holds it waits normally, without an owner-died report.
  auto [mine, theirs] = mp::Pipe();
  auto next = ctx.Process(take_over<L>, lock, theirs);
  next.start();
  std::this_thread::sleep_for(100ms);
  release_now = true;
  waiter.join();
  auto [ok, died, took] = mine.recv<std::tuple<bool, bool, double>>();
  ASSERT_TRUE(next.join(30s));
  EXPECT_TRUE(ok);
  EXPECT_FALSE(died) << "released normally: no owner died";
  EXPECT_LT(took, 5.0);
  // Free again; owner_died() is cleared by release().
  ASSERT_TRUE(lock.acquire(false));
  EXPECT_FALSE(lock.owner_died());
  lock.release();
}

TEST_P(SyncTest, LockHolderKilledIsTakenOver) { check_owner_death(ctx(), ctx().Lock(), 1); }
TEST_P(SyncTest, RLockHolderKilledIsTakenOver) { check_owner_death(ctx(), ctx().RLock(), 3); }

// A process that arrives after the holder died takes the lock over itself.
TEST_P(SyncTest, DeadHoldersLockGoesToTheNextProcess) {
  mp::Lock lock = ctx().Lock();
  mp::Event held = ctx().Event();
  auto holder = ctx().Process(hold_forever<mp::Lock>, lock, held, 1);
  holder.start();
  ASSERT_TRUE(held.wait(30s));
  holder.kill();
  ASSERT_TRUE(holder.join(30s));
  EXPECT_FALSE(lock.acquire(false)) << "acquire(false) does not wait, so it never takes over";
  auto [mine, theirs] = mp::Pipe();
  auto next = ctx().Process(take_over<mp::Lock>, lock, theirs);
  next.start();
  auto [ok, died, took] = mine.recv<std::tuple<bool, bool, double>>();
  ASSERT_TRUE(next.join(30s));
  EXPECT_TRUE(ok);
  EXPECT_TRUE(died);
  EXPECT_LE(took, 2.0);
  EXPECT_TRUE(lock.acquire(false)) << "the taker released it";
  EXPECT_FALSE(lock.owner_died());
  lock.release();
}

TEST_P(SyncTest, ConditionNotifyAndNotifyAll) {
  // CPython's test_notify / test_notify_all with processes.
  mp::Condition cond = ctx().Condition();
  mp::Semaphore sleeping = ctx().Semaphore(0);
  mp::Semaphore woken = ctx().Semaphore(0);
  std::vector<mp::Process> procs;
  for (int i = 0; i < 3; ++i) {
    procs.push_back(ctx().Process(cond_waiter, cond, sleeping, woken, 30.0));
    procs.back().start();
  }
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(sleeping.acquire(true, 30s));
  std::this_thread::sleep_for(50ms);  // let them reach wait()
  EXPECT_EQ(woken.get_value(), 0);
  {
    std::lock_guard guard(cond);
    cond.notify();
  }
  ASSERT_TRUE(woken.acquire(true, 30s));
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(woken.get_value(), 0);  // exactly one woke
  {
    std::lock_guard guard(cond);
    cond.notify_all();
  }
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(woken.acquire(true, 30s));
  for (auto& p : procs) ASSERT_TRUE(p.join(30s));
}

TEST_P(SyncTest, ConditionWaitForAcrossProcesses) {
  mp::Condition cond = ctx().Condition();
  mp::Semaphore state = ctx().Semaphore(0);
  mp::Semaphore result = ctx().Semaphore(0);
  auto p = ctx().Process(wait_for_flag, cond, state, result);
  p.start();
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(10ms);
    std::lock_guard guard(cond);
    state.release();
    cond.notify_all();
  }
  ASSERT_TRUE(p.join(60s));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_TRUE(result.acquire(false));
}

TEST_P(SyncTest, EventSetByAChild) {
  mp::Event e = ctx().Event();
  auto p = ctx().Process(set_after, e, 0.1);
  p.start();
  EXPECT_FALSE(e.is_set());
  EXPECT_TRUE(e.wait(30s));
  EXPECT_TRUE(e.is_set());
  ASSERT_TRUE(p.join(30s));
}

TEST(SyncContexts, ForkObjectsCannotGoToSpawnChildren) {
  MP_SKIP_UNLESS_METHOD("fork");
  mp::Lock lock = mp::get_context("fork").Lock();
  auto p = mp::get_context("spawn").Process([](mp::Lock) {}, lock);
  try {
    p.start();
    FAIL() << "expected a refusal";
  } catch (const mp::ProcessError& e) {
    EXPECT_NE(std::string(e.what()).find("fork context"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Methods, SyncTest, testing::Values("fork", "spawn", "forkserver"));

// ---- Barrier (CPython's _TestBarrier) ---------------------------------------------------------
namespace {

// The action, travelling to spawn/forkserver children as a registered serializable functor.
struct CountCycles {
  mp::Semaphore cycles;
  void operator()() { cycles.release(); }
  template <class A>
  void serialize(A& a) { a(cycles); }
};
MP_TASK_TYPE(CountCycles);

void barrier_party(mp::Barrier b, mp::Semaphore indices, int rounds) {
  for (int r = 0; r < rounds; ++r) {
    int i = b.wait(mp::Seconds(30));
    if (i < 0 || i >= b.parties()) mp::sys_exit(3);
  }
  indices.release();
}

void barrier_expect_broken(mp::Barrier b, mp::Semaphore broke) {
  try {
    b.wait(mp::Seconds(30));
  } catch (const mp::BrokenBarrierError&) {
    broke.release();
  }
}

}  // namespace

TEST(Barrier, ThreadsIndicesAndAction) {
  std::atomic<int> actions{0};
  mp::Barrier b(3, [&actions] { ++actions; });
  EXPECT_EQ(b.parties(), 3);
  std::vector<int> seen(3, 0);
  std::mutex m;
  std::vector<std::thread> ts;
  for (int t = 0; t < 3; ++t) {
    ts.emplace_back([&] {
      for (int r = 0; r < 5; ++r) {
        int i = b.wait(30s);
        std::lock_guard g(m);
        seen[static_cast<std::size_t>(i)]++;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(actions.load(), 5);
  EXPECT_EQ(seen, (std::vector<int>{5, 5, 5}));
  EXPECT_EQ(b.n_waiting(), 0);
  EXPECT_FALSE(b.broken());
}

TEST(Barrier, TimeoutAbortAndReset) {
  mp::Barrier b(2, mp::Timeout{0.1s});
  EXPECT_THROW(b.wait(), mp::BrokenBarrierError);  // the default timeout breaks it
  EXPECT_TRUE(b.broken());
  EXPECT_THROW(b.wait(), mp::BrokenBarrierError);
  b.reset();
  EXPECT_FALSE(b.broken());
  std::thread t([&] { EXPECT_THROW(b.wait(30s), mp::BrokenBarrierError); });
  while (b.n_waiting() == 0) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(b.n_waiting(), 1);
  b.abort();
  t.join();
  EXPECT_TRUE(b.broken());
  EXPECT_THROW(mp::Barrier(0), mp::ValueError);
}

TEST(Barrier, ActionThatThrowsBreaksIt) {
  mp::Barrier b(1, [] { throw std::runtime_error("action failed"); });
  EXPECT_THROW(b.wait(), std::runtime_error);
  EXPECT_TRUE(b.broken());
}

TEST_P(SyncTest, BarrierAcrossProcesses) {
  mp::Semaphore cycles = ctx().Semaphore(0);
  mp::Barrier b = ctx().Barrier(4, CountCycles{cycles});
  mp::Semaphore done = ctx().Semaphore(0);
  std::vector<mp::Process> procs;
  for (int i = 0; i < 3; ++i) {
    procs.push_back(ctx().Process(barrier_party, b, done, 3));
    procs.back().start();
  }
  for (int r = 0; r < 3; ++r) EXPECT_GE(b.wait(30s), 0);
  for (auto& p : procs) {
    ASSERT_TRUE(p.join(30s));
    EXPECT_EQ(p.exitcode(), 0);
  }
  EXPECT_EQ(cycles.get_value(), 3);  // the action ran once per cycle, in whichever process came last
  EXPECT_EQ(done.get_value(), 3);
}

TEST_P(SyncTest, BarrierAbortReachesChildren) {
  mp::Barrier b = ctx().Barrier(3);
  mp::Semaphore broke = ctx().Semaphore(0);
  std::vector<mp::Process> procs;
  for (int i = 0; i < 2; ++i) {
    procs.push_back(ctx().Process(barrier_expect_broken, b, broke));
    procs.back().start();
  }
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (b.n_waiting() < 2 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(2ms);
  b.abort();
  for (auto& p : procs) ASSERT_TRUE(p.join(30s));
  EXPECT_EQ(broke.get_value(), 2);
}
