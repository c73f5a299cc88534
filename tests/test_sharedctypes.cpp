// Value, Array, RawValue, RawArray (CPython's _TestValue, _TestArray) under every start method,
// and the shared heap beneath them.
#include "test_helpers.hpp"

#include <mp/mp.hpp>
#include <mp/sharedctypes.hpp>

#include <numeric>

namespace {

using namespace mp_test;

class SharedCtypes : public mp_test::MethodTest<std::string> {
 protected:
  mp::Context& ctx() { return mp::get_context(GetParam()); }
};

// CPython's _test: every value changes in the child.
void modify_values(mp::Value<int> i, mp::Value<double> d, mp::Value<short> h, mp::Value<char> c,
                   mp::RawValue<long long> raw) {
  i.value(i.value() + 1);
  d.value(d.value() * 2);
  h.value(static_cast<short>(h.value() - 300));
  c.value('y');
  raw.value(raw.value() - 1);
}

TEST_P(SharedCtypes, ValueChangedByAChild) {
  mp::Value<int> i(25);
  mp::Value<double> d(1.25);
  mp::Value<short> h(-1);
  mp::Value<char> c('x');
  mp::RawValue<long long> raw(1LL << 40);
  EXPECT_EQ(i.value(), 25);
  EXPECT_EQ(d.value(), 1.25);
  auto p = ctx().Process(modify_values, i, d, h, c, raw);
  p.start();
  ASSERT_TRUE(p.join(kLong));
  ASSERT_EQ(p.exitcode(), 0);
  EXPECT_EQ(i.value(), 26);
  EXPECT_EQ(d.value(), 2.5);
  EXPECT_EQ(h.value(), -301);
  EXPECT_EQ(c.value(), 'y');
  EXPECT_EQ(raw.value(), (1LL << 40) - 1);
}

// The docs' classic: processes add under the value's lock; the total is exact.
void add_many(mp::Value<int> v, int times) {
  for (int k = 0; k < times; ++k) {
    std::lock_guard g(v.get_lock());
    v.value(v.value() + 1);
  }
}

TEST_P(SharedCtypes, IncrementsUnderTheLockAreExact) {
  mp::Value<int> counter(0, true, &ctx());
  std::vector<mp::Process> procs;
  for (int k = 0; k < 4; ++k) procs.push_back(ctx().Process(add_many, counter, 10000));
  for (auto& p : procs) p.start();
  for (auto& p : procs) {
    ASSERT_TRUE(p.join(mp::Seconds(60)));
    EXPECT_EQ(p.exitcode(), 0);
  }
  EXPECT_EQ(counter.value(), 40000);
}

// CPython's test_array: the child turns it into its prefix sums.
void prefix_sums(mp::Array<int> seq) {
  for (std::size_t i = 1; i < seq.size(); ++i) seq[i] = seq[i] + seq[i - 1];
}

TEST_P(SharedCtypes, ArrayChangedByAChild) {
  std::vector<int> init(10);
  std::iota(init.begin(), init.end(), 0);
  mp::Array<int> arr(init);
  EXPECT_EQ(arr.size(), 10u);
  EXPECT_EQ(arr.to_vector(), init);
  auto p = ctx().Process(prefix_sums, arr);
  p.start();
  ASSERT_TRUE(p.join(kLong));
  ASSERT_EQ(p.exitcode(), 0);
  std::vector<int> expect(10);
  std::partial_sum(init.begin(), init.end(), expect.begin());
  EXPECT_EQ(arr.to_vector(), expect);
}

void fill_raw(mp::RawArray<double> a) {
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<double>(i) / 2;
}

TEST_P(SharedCtypes, RawArrayAndALargeOne) {
  mp::RawArray<double> small(7);
  mp::RawArray<double> large(4 << 20);  // 32 MiB: its own arena
  for (double x : small.span()) EXPECT_EQ(x, 0.0);
  for (auto* a : {&small, &large}) {
    auto p = ctx().Process(fill_raw, *a);
    p.start();
    ASSERT_TRUE(p.join(kLong));
    ASSERT_EQ(p.exitcode(), 0);
  }
  EXPECT_EQ(small[6], 3.0);
  EXPECT_EQ(large[(4 << 20) - 1], ((4 << 20) - 1) / 2.0);
}

INSTANTIATE_TEST_SUITE_P(Methods, SharedCtypes, testing::Values("fork", "spawn", "forkserver"));

TEST(SharedCtypesApi, ArrayFromSizeIsZeroed) {
  for (int round = 0; round < 3; ++round) {  // blocks come back reused: still zero
    mp::Array<long> a(100);
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(static_cast<long>(a[i]), 0) << i;
      a[i] = 7;
    }
  }
  mp::RawArray<char> empty(std::size_t(0));
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_TRUE(empty.span().empty());
}

TEST(SharedCtypesApi, GetObjAndGetLock) {
  // Default: a lock of its own (an RLock, as CPython).
  mp::Value<int> v(5);
  v.get_lock().acquire();
  v.get_lock().acquire();  // recursive
  EXPECT_EQ(v.get_obj().value(), 5);
  v.get_lock().release();
  v.get_lock().release();
  // A given lock is the lock.
  mp::Lock lock;
  mp::Value<int> w(7, lock);
  EXPECT_EQ(w.get_lock().name(), lock.name());
  {
    std::lock_guard g(w);  // Lockable, as `with w:`
    EXPECT_TRUE(lock.is_mine());
  }
  EXPECT_FALSE(lock.is_mine());
  // lock=false: no lock at all.
  mp::Value<int> raw(9, false);
  EXPECT_THROW(raw.get_lock(), mp::ValueError);
  EXPECT_EQ(raw.value(), 9);
  mp::Array<int> arr(std::vector<int>{1, 2, 3}, false);
  EXPECT_THROW(arr.get_lock(), mp::ValueError);
  EXPECT_EQ(arr.get_obj()[2], 3);
}

TEST(SharedCtypesApi, BadIndexIsAnIndexError) {
  mp::Array<int> arr(3);
  EXPECT_THROW(arr[3], mp::IndexError);
  mp::RawArray<int> raw(3);
  EXPECT_THROW(raw[100], mp::IndexError);
  mp::Value<int> empty;
  EXPECT_THROW(empty.value(), mp::ValueError);
}

// Many small objects share arenas; freeing and reallocating stays within them.
TEST(SharedHeap, SmallObjectsShareArenasAndAreReused) {
  std::vector<mp::RawValue<int>> keep;
  for (int k = 0; k < 1000; ++k) keep.emplace_back(k);
  for (int k = 0; k < 1000; ++k) EXPECT_EQ(keep[k].value(), k);
  int fds_before = count_open_fds();
  for (int round = 0; round < 20; ++round) {
    std::vector<mp::RawValue<int>> churn;
    for (int k = 0; k < 1000; ++k) churn.emplace_back(k);
  }
  EXPECT_EQ(count_open_fds(), fds_before) << "freed blocks must be reused, not new arenas made";
}

// A block stays alive while another process holds it, even after its creator dropped it.
void hold_and_check(mp::Connection c, mp::RawArray<int> a) {
  c.send(1);
  (void)c.recv<int>();  // the parent has dropped its handle and made new objects
  bool ok = true;
  for (std::size_t i = 0; i < a.size(); ++i) ok = ok && a[i] == 42;
  c.send(ok);
}

TEST(SharedHeap, ABlockOutlivesItsCreatorsHandle) {
  auto& ctx = mp::get_context("spawn");
  auto [mine, theirs] = mp::Pipe();
  mp::Process p;
  {
    mp::RawArray<int> a(64);
    for (auto& x : a.span()) x = 42;
    p = ctx.Process(hold_and_check, theirs, a);
    p.start();
    ASSERT_EQ(mine.recv<int>(), 1);
  }
  // The parent's handle is gone; fresh allocations must not land on the child's block.
  std::vector<mp::RawArray<int>> fresh;
  for (int k = 0; k < 50; ++k) {
    fresh.emplace_back(64);
    for (auto& x : fresh.back().span()) x = -1;
  }
  mine.send(0);
  EXPECT_TRUE(mine.recv<bool>());
  ASSERT_TRUE(p.join(kLong));
}

}  // namespace
