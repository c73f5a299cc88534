// Queue, SimpleQueue, JoinableQueue: semantics within a process and across processes under every
// start method, large items, and what a SIGKILLed consumer or producer leaves behind.
#include "test_helpers.hpp"

#include <mp/mp.hpp>
#include <mp/queues.hpp>

#include <numeric>
#include <set>
#include <variant>

namespace {

using namespace mp_test;

TEST(Queue, PutGetInOrder) {
  mp::Queue<int> q;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.qsize(), 0u);
  for (int i = 0; i < 1000; ++i) q.put(i);
  EXPECT_EQ(q.qsize(), 1000u);
  EXPECT_FALSE(q.empty());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(q.get(), i);
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_TRUE(q.empty());
}

TEST(Queue, EmptyAndTimeouts) {
  mp::Queue<std::string> q;
  EXPECT_THROW(q.get(false), mp::Empty);
  EXPECT_THROW(q.get_nowait(), mp::Empty);
  auto t0 = Clock::now();
  EXPECT_THROW(q.get(true, mp::Seconds(0.2)), mp::Empty);
  double took = elapsed_since(t0);
  EXPECT_GE(took, 0.18);
  EXPECT_LT(took, 5.0);
  EXPECT_THROW(q.get(true, mp::Seconds(-1)), mp::Empty);
}

TEST(Queue, MaxsizeFullAndTimeouts) {
  mp::Queue<int> q(3);
  q.put(1);
  q.put(2);
  q.put_nowait(3);
  EXPECT_TRUE(q.full());
  EXPECT_EQ(q.qsize(), 3u);
  EXPECT_THROW(q.put(4, false), mp::Full);
  EXPECT_THROW(q.put_nowait(4), mp::Full);
  auto t0 = Clock::now();
  EXPECT_THROW(q.put(4, true, mp::Seconds(0.2)), mp::Full);
  EXPECT_GE(elapsed_since(t0), 0.18);
  EXPECT_EQ(q.get(), 1);
  EXPECT_FALSE(q.full());
  q.put(4, true, mp::Seconds(1));
  EXPECT_EQ(q.get(), 2);
  EXPECT_EQ(q.get(), 3);
  EXPECT_EQ(q.get(), 4);
}

TEST(Queue, AnItemAnySize) {
  mp::Queue<std::vector<std::uint8_t>> q;
  // Bigger than the ring: streamed through it in chunks while another thread reads.
  std::vector<std::uint8_t> big(100u << 20);
  for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<std::uint8_t>(i / 4096);
  std::thread reader([&] {
    auto got = q.get(true, mp::Seconds(60));
    EXPECT_EQ(got.size(), big.size());
    EXPECT_TRUE(got == big);
    EXPECT_TRUE(q.get(true, mp::Seconds(10)).empty());
  });
  q.put(big);
  q.put({});
  reader.join();
}

TEST(Queue, UseAfterCloseIsAValueError) {
  mp::Queue<int> q;
  q.put(1);
  q.close();
  EXPECT_THROW(q.put(2), mp::ValueError);
  EXPECT_THROW(q.get(), mp::ValueError);
  q.close();  // idempotent
  q.join_thread();
}

TEST(Queue, JoinThreadNeedsClose) {
  mp::Queue<int> q;
  EXPECT_THROW(q.join_thread(), mp::AssertionError);
}

TEST(JoinableQueue, TaskDoneAndJoin) {
  mp::JoinableQueue<int> q;
  EXPECT_THROW(q.task_done(), mp::ValueError);
  for (int i = 0; i < 10; ++i) q.put(i);
  std::atomic<int> done{0};
  std::thread worker([&] {
    for (int i = 0; i < 10; ++i) {
      (void)q.get();
      std::this_thread::sleep_for(5ms);
      ++done;
      q.task_done();
    }
  });
  q.join();
  EXPECT_EQ(done.load(), 10);
  worker.join();
  EXPECT_THROW(q.task_done(), mp::ValueError) << "more task_done() than items";
  q.join();  // nothing unfinished: returns at once
}

TEST(SimpleQueue, PutGetEmptyClose) {
  mp::SimpleQueue<std::string> q;
  EXPECT_TRUE(q.empty());
  q.put("a");
  q.put(std::string(300000, 'b'));  // larger than a chunk: several records
  EXPECT_FALSE(q.empty());
  EXPECT_EQ(q.get(), "a");
  EXPECT_EQ(q.get().size(), 300000u);
  EXPECT_TRUE(q.empty());
  q.close();
  EXPECT_THROW(q.put("c"), mp::ValueError);
}

TEST(Queue, ItemsCannotCarryHandles) {
  mp::Queue<mp::Connection> q;
  auto [a, b] = mp::Pipe();
  EXPECT_THROW(q.put(a), mp::ValueError);
}

// ---- across processes ------------------------------------------------------------------------

class QueueAcross : public mp_test::MethodTest<std::string> {
 protected:
  mp::Context& ctx() { return mp::get_context(GetParam()); }
};

using Seed = std::tuple<int, std::optional<std::string>, std::string>;  // [42, None, 'hello']

void put_seed(mp::Queue<Seed> q) { q.put({42, std::nullopt, "hello"}); }

TEST_P(QueueAcross, TheDocsExample) {
  auto q = ctx().Queue<Seed>();
  auto p = ctx().Process(put_seed, q);
  p.start();
  auto got = q.get(true, mp::Seconds(30));
  EXPECT_EQ(std::get<0>(got), 42);
  EXPECT_FALSE(std::get<1>(got).has_value());
  EXPECT_EQ(std::get<2>(got), "hello");
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

// A child puts many items and exits at once: they are all flushed before it ends.
void put_many_and_exit(mp::Queue<int> q, int n) {
  for (int i = 0; i < n; ++i) q.put(i);
}

TEST_P(QueueAcross, AChildFlushesBeforeExiting) {
  mp::Queue<int> q;
  const int n = 300000;  // more than the ring holds: the feeder must run at exit
  auto p = ctx().Process(put_many_and_exit, q, n);
  p.start();
  for (int i = 0; i < n; ++i) ASSERT_EQ(q.get(true, mp::Seconds(30)), i);
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

// cancel_join_thread(): the child may exit with items unwritten (CPython's test_cancel_join_thread
// spirit: it must not hang).
void put_cancel_and_exit(mp::Queue<int> q) {
  q.cancel_join_thread();
  for (int i = 0; i < 300000; ++i) q.put(i);
}

TEST_P(QueueAcross, CancelJoinThreadLetsAChildExit) {
  mp::Queue<int> q;
  auto p = ctx().Process(put_cancel_and_exit, q);
  p.start();
  ASSERT_TRUE(p.join(kLong)) << "a child with cancel_join_thread() must not wait for a reader";
  EXPECT_EQ(p.exitcode(), 0);
  int got = 0;
  try {
    for (;;) {
      EXPECT_EQ(q.get(true, mp::Seconds(0.5)), got);
      ++got;
    }
  } catch (const mp::Empty&) {
  }
  EXPECT_GT(got, 0);
  EXPECT_LT(got, 300000);
}

void consume_and_task_done(mp::JoinableQueue<int> q, mp::Value<long> sum) {
  for (;;) {
    int v = q.get(true, mp::Seconds(30));
    if (v < 0) {
      q.task_done();
      return;
    }
    {
      std::lock_guard g(sum.get_lock());
      sum.value(sum.value() + v);
    }
    q.task_done();
  }
}

TEST_P(QueueAcross, JoinableQueueAcrossProcesses) {
  mp::JoinableQueue<int> q;
  mp::Value<long> sum(0);
  std::vector<mp::Process> workers;
  for (int w = 0; w < 3; ++w) workers.push_back(ctx().Process(consume_and_task_done, q, sum));
  for (auto& w : workers) w.start();
  for (int i = 1; i <= 1000; ++i) q.put(i);
  for (int w = 0; w < 3; ++w) q.put(-1);
  q.join();
  EXPECT_EQ(sum.value(), 1000L * 1001 / 2);
  for (auto& w : workers) {
    ASSERT_TRUE(w.join(kLong));
    EXPECT_EQ(w.exitcode(), 0);
  }
}

// A queue used before a fork keeps working in both processes.
void echo_back(mp::Queue<int> in, mp::Queue<int> out) {
  for (int i = 0; i < 100; ++i) out.put(in.get(true, mp::Seconds(30)) * 2);
}

TEST_P(QueueAcross, UsedBeforeStartThenShared) {
  mp::Queue<int> in, out;
  in.put(1);
  EXPECT_EQ(in.get(), 1);
  out.put(7);
  auto p = ctx().Process(echo_back, in, out);
  p.start();
  for (int i = 0; i < 100; ++i) in.put(i);
  EXPECT_EQ(out.get(true, mp::Seconds(30)), 7);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(out.get(true, mp::Seconds(30)), i * 2);
  ASSERT_TRUE(p.join(kLong));
}

// Many producers and consumers: every item exactly once, each producer's items in order.
void produce(mp::Queue<std::pair<int, int>> q, int id, int n) {
  for (int i = 0; i < n; ++i) q.put({id, i});
}
void consume(mp::Queue<std::pair<int, int>> q, mp::Queue<std::vector<std::pair<int, int>>> report, int stop_markers) {
  std::vector<std::pair<int, int>> seen;
  int stops = 0;
  while (stops < stop_markers) {
    auto item = q.get(true, mp::Seconds(60));
    if (item.first < 0) {
      ++stops;
      continue;
    }
    seen.push_back(item);
  }
  report.put(seen);
}

void many_to_many(mp::Context& ctx, int producers, int consumers, int per_producer) {
  mp::Queue<std::pair<int, int>> q;
  mp::Queue<std::vector<std::pair<int, int>>> report;
  std::vector<mp::Process> procs;
  for (int c = 0; c < consumers; ++c) procs.push_back(ctx.Process(consume, q, report, 1));
  for (int p = 0; p < producers; ++p) procs.push_back(ctx.Process(produce, q, p, per_producer));
  for (auto& p : procs) p.start();
  for (int p = 0; p < producers; ++p) ASSERT_TRUE(procs[consumers + p].join(mp::Seconds(120)));
  for (int c = 0; c < consumers; ++c) q.put({-1, -1});
  std::vector<std::vector<int>> per(producers);
  for (int c = 0; c < consumers; ++c) {
    auto seen = report.get(true, mp::Seconds(120));
    std::vector<int> last(producers, -1);
    for (auto [id, i] : seen) {
      ASSERT_GE(id, 0);
      ASSERT_LT(id, producers);
      EXPECT_GT(i, last[id]) << "one producer's items arrive in order";
      last[id] = i;
      per[id].push_back(i);
    }
  }
  for (int p = 0; p < producers; ++p) {
    std::sort(per[p].begin(), per[p].end());
    ASSERT_EQ(per[p].size(), static_cast<std::size_t>(per_producer)) << "producer " << p;
    for (int i = 0; i < per_producer; ++i) ASSERT_EQ(per[p][i], i) << "every item exactly once";
  }
  for (auto& p : procs) ASSERT_TRUE(p.join(mp::Seconds(60)));
}

TEST_P(QueueAcross, ManyProducersManyConsumers) { many_to_many(ctx(), 3, 3, 20000); }

INSTANTIATE_TEST_SUITE_P(Methods, QueueAcross, testing::Values("fork", "spawn", "forkserver"));

// The stress test: 4 producers x 4 consumers x 250,000 items.
TEST(QueueStress, FourByFourQuarterMillionEach) {
  const char* scale = std::getenv("MP_TEST_SCALE");
  double f = scale ? std::atof(scale) : 1.0;
  int n = std::max(1000, static_cast<int>(250000 * std::min(f, 1.0)));
  many_to_many(mp::get_context(mp_test::method_available("fork") ? "fork" : "spawn"), 4, 4, n);
}

// ---- dying ---------------------------------------------------------------------------------

// A consumer SIGKILLed while blocked in get() does not wedge the queue for the others.
void block_in_get(mp::Queue<int> q, mp::Event ready) {
  ready.set();
  (void)q.get();  // blocks: nothing is put until it is dead
}

TEST_P(QueueAcross, AConsumerKilledInGetDoesNotWedgeIt) {
  mp::Queue<int> q;
  mp::Event ready;
  auto p = ctx().Process(block_in_get, q, ready);
  p.start();
  ASSERT_TRUE(ready.wait(kLong));
  std::this_thread::sleep_for(100ms);
  p.kill();
  ASSERT_TRUE(p.join(kLong));
  q.put(5);
  EXPECT_EQ(q.get(true, mp::Seconds(5)), 5);
}

// A consumer SIGKILLed in the middle of copying a large item out: the next consumer takes the
// reader lock over and gets the next whole item.
void read_big_slowly(mp::Queue<std::string> q, mp::Event started) {
  started.set();
  (void)q.get();
}

TEST(QueueDying, AReaderKilledMidItem) {
  MP_SKIP_UNLESS_METHOD("fork");  // the child's target is a closure over this test's state
  auto& ctx = mp::get_context("fork");
  mp::Queue<std::string> q;
  mp::Event started;
  // A writer thread streams a 64 MiB item; the child reads it; we kill the child mid-way.
  std::thread writer([&] { q.put(std::string(64u << 20, 'x')); q.put("next"); });
  auto p = ctx.Process(read_big_slowly, q, started);
  p.start();
  ASSERT_TRUE(started.wait(kLong));
  std::this_thread::sleep_for(20ms);
  p.kill();
  ASSERT_TRUE(p.join(kLong));
  // Whatever the child had consumed is lost with it; what follows arrives whole.
  std::string got;
  auto t0 = Clock::now();
  while (elapsed_since(t0) < 30) {
    got = q.get(true, mp::Seconds(30));
    if (got == "next") break;
    EXPECT_EQ(got.size(), 64u << 20) << "only whole items come out";
  }
  EXPECT_EQ(got, "next");
  writer.join();
}

// A producer SIGKILLed mid-item (streaming a large one): readers drop the partial item and get
// everything the producer had written before, and what others write after.
void put_then_big(mp::Queue<std::string> q, mp::Event wrote_small) {
  for (int i = 0; i < 10; ++i) q.put("small " + std::to_string(i));
  wrote_small.set();
  q.put(std::string(256u << 20, 'y'));  // blocks mid-item: nobody reads yet
}

TEST(QueueDying, AProducerKilledMidItemLosesNothingFlushed) {
  MP_SKIP_UNLESS_METHOD("fork");  // the child's target is a closure over this test's state
  auto& ctx = mp::get_context("fork");
  mp::Queue<std::string> q;
  mp::Event wrote_small;
  auto p = ctx.Process(put_then_big, q, wrote_small);
  p.start();
  ASSERT_TRUE(wrote_small.wait(kLong));
  std::this_thread::sleep_for(300ms);  // the big item fills the ring, its writer waits for room
  p.kill();
  ASSERT_TRUE(p.join(kLong));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(q.get(true, mp::Seconds(10)), "small " + std::to_string(i));
  q.put("after");  // this writer takes the dead one's lock over
  EXPECT_EQ(q.get(true, mp::Seconds(10)), "after");
  EXPECT_THROW(q.get(true, mp::Seconds(0.3)), mp::Empty);
}

}  // namespace
