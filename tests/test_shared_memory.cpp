// SharedMemory (CPython's _TestSharedMemory cases that apply) and its cleanup by the tracker.
#include "probe_helpers.hpp"
#include "platform/named_objects.hpp"
#include "test_helpers.hpp"

#include <mp/mp.hpp>
#include <mp/shared_memory.hpp>

#include "core/src/object_name.hpp"
#include "platform/shm.hpp"

#include <cstring>

namespace {

using namespace mp_test;

std::string unique_name() { return "mp-test-" + mp::detail::make_object_name().substr(4); }

TEST(SharedMemory, Basics) {
  const std::string name = unique_name();
  mp::SharedMemory sms(name, true, 512);
  EXPECT_EQ(sms.name(), name);
  EXPECT_GE(sms.size(), 512u);
  EXPECT_EQ(sms.buf().size(), sms.size());
  sms.buf()[0] = std::byte{42};
  EXPECT_EQ(sms.buf()[0], std::byte{42});

  // Attach by name (with or without the leading '/'): the same bytes.
  mp::SharedMemory also(name);
  EXPECT_EQ(also.buf()[0], std::byte{42});
  if (mp_test::kWindows) {
    EXPECT_GE(also.size(), sms.size()) << "Windows reports a named mapping's size in whole pages (as CPython)";
  } else {
    EXPECT_EQ(also.size(), sms.size());
  }
  mp::SharedMemory slash("/" + name);
  EXPECT_EQ(slash.name(), name);
  also.buf()[1] = std::byte{7};
  EXPECT_EQ(sms.buf()[1], std::byte{7});

  // Creating an existing name: EEXIST; attaching to a missing one: ENOENT.
  try {
    mp::SharedMemory dup(name, true, 512);
    ADD_FAILURE() << "created a segment over an existing name";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::file_exists) << e.what();
  }
  try {
    mp::SharedMemory missing(unique_name());
    ADD_FAILURE() << "attached to a segment that does not exist";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory) << e.what();
  }

  // Use after close.
  also.close();
  EXPECT_TRUE(also.closed());
  EXPECT_THROW(also.buf(), mp::ValueError);
  also.close();  // idempotent
  EXPECT_EQ(sms.buf()[1], std::byte{7}) << "closing one view leaves the others";

  sms.unlink();
  if (mp::platform::named_objects_persist()) {
    EXPECT_FALSE(segment_exists(name));
    try {
      sms.unlink();
      ADD_FAILURE() << "a second unlink succeeded";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    }
  } else {
    // Windows (as CPython): unlink does nothing; the name goes with the last handle, and this
    // process still holds one.
    EXPECT_TRUE(segment_exists(name));
    EXPECT_NO_THROW(sms.unlink());
  }
  EXPECT_EQ(sms.buf()[0], std::byte{42}) << "a view outlives the name";
}

TEST(SharedMemory, InvalidCreation) {
  EXPECT_THROW(mp::SharedMemory(std::nullopt, true, 0), mp::ValueError);
  EXPECT_THROW(mp::SharedMemory(unique_name(), true, 0), mp::ValueError);
  EXPECT_THROW(mp::SharedMemory(std::nullopt, false), mp::ValueError);  // attach needs a name
  EXPECT_THROW(mp::SharedMemory("a/b", true, 16), mp::ValueError);
  EXPECT_THROW(mp::SharedMemory("", true, 16), mp::ValueError);
  mp::SharedMemory empty;
  EXPECT_THROW(empty.buf(), mp::ValueError);
}

TEST(SharedMemory, RandomNamesAreUniqueAndTracked) {
  mp::SharedMemory a(std::nullopt, true, 100);
  mp::SharedMemory b(std::nullopt, true, 100);
  EXPECT_NE(a.name(), b.name());
  EXPECT_EQ(mp::detail::object_name_creator(a.name()), mp::platform::current_pid());
  EXPECT_LE(a.name().size() + 1, 30u);
  if (mp::platform::named_objects_persist()) {
    ASSERT_TRUE(mp::resource_tracker::pid().has_value()) << "a tracked segment starts the tracker";
  } else {
    EXPECT_FALSE(mp::resource_tracker::pid().has_value()) << "no tracker where the OS frees named objects";
  }
  a.unlink();
  b.unlink();
}

void write_through(mp::SharedMemory shm, std::string text) {
  std::memcpy(shm.buf().data(), text.data(), text.size());
}
void attach_and_write(std::string name, std::string text) {
  mp::SharedMemory shm(name);
  std::memcpy(shm.buf().data(), text.data(), text.size());
}

class SharedMemoryAcross : public mp_test::MethodTest<std::string> {
 protected:
  mp::Context& ctx() { return mp::get_context(GetParam()); }
};

// CPython's test_shared_memory_pickle_unpickle / _across_processes.
TEST_P(SharedMemoryAcross, AChildWritesThroughAPassedSegment) {
  mp::SharedMemory shm(std::nullopt, true, 64);
  auto p = ctx().Process(write_through, shm, std::string("hello"));
  p.start();
  ASSERT_TRUE(p.join(kLong));
  ASSERT_EQ(p.exitcode(), 0);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(shm.buf().data()), 5), "hello");
  auto q = ctx().Process(attach_and_write, shm.name(), std::string("howdy"));
  q.start();
  ASSERT_TRUE(q.join(kLong));
  ASSERT_EQ(q.exitcode(), 0);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(shm.buf().data()), 5), "howdy");
  EXPECT_TRUE(segment_exists(shm.name())) << "a child that attached removed the segment";
  shm.unlink();
}

// A segment goes through a Connection too (by name).
TEST_P(SharedMemoryAcross, ThroughAConnection) {
  auto [a, b] = mp::Pipe();
  mp::SharedMemory shm(std::nullopt, true, 16);
  shm.buf()[3] = std::byte{9};
  a.send(shm);
  auto got = b.recv<mp::SharedMemory>();
  EXPECT_EQ(got.name(), shm.name());
  EXPECT_EQ(got.buf()[3], std::byte{9});
  shm.unlink();
}

INSTANTIATE_TEST_SUITE_P(Methods, SharedMemoryAcross, testing::Values("fork", "spawn", "forkserver"));

// Fault test: a tree that made 10 segments and 10 Values is SIGKILLed: 2 s after the last exit,
// nothing of it is left in /dev/shm, and the tracker said what it cleaned.
TEST(SharedMemoryCleanup, SigkilledTreeLeavesNothing) {
  MP_SKIP_ON_WINDOWS("no resource tracker: the OS frees named objects with their last handle");
  if (!can_watch_dev_shm()) GTEST_SKIP() << "no /dev/shm to watch here";
  TempDir dir;
  Probe probe({"leak-shm", "spawn", "1"}, dir / "stderr");
  LeakedTree tree = parse_tree(probe.read_until_ready());
  ASSERT_EQ(tree.objects.size(), 20u) << probe.err();
  for (auto& [type, name] : tree.objects) ASSERT_TRUE(exists(shm_file(type, name))) << name;
  const std::set<int> tree_pids = {probe.pid, tree.pids["CHILD"]};
  kill_pid(tree.pids["CHILD"]);
  kill_pid(probe.pid);
  probe.wait_exit();
  ASSERT_GE(wait_until([&] { return process_ended(tree.pids["CHILD"]); }, 10), 0);
  // Anything in /dev/shm made by a process of the tree (the names say who made them).
  auto leftovers = [&] {
    std::vector<std::string> left;
    for (auto& name : dev_shm_names()) {
      auto creator = mp::detail::object_name_creator(name);
      if (creator && tree_pids.count(*creator)) left.push_back(name);
    }
    return left;
  };
  double took = wait_until([&] { return leftovers().empty(); }, 10);
  std::string err;
  wait_until([&] { return (err = probe.err()).find("leaked shared_memory") != std::string::npos; }, 5);
  ASSERT_GE(took, 0) << "still there 10 s after: " << leftovers().size() << "\n" << err;
  EXPECT_LE(took, 2.0);
  EXPECT_NE(err.find("There appear to be 20 leaked shared_memory objects to clean up at shutdown"), std::string::npos)
      << err;
}

// track=false (CPython 3.13): the tracker leaves the segments; whoever made them must unlink.
TEST(SharedMemoryCleanup, UntrackedSegmentsStay) {
  MP_SKIP_ON_WINDOWS("no resource tracker, and nothing outlives its last handle, tracked or not");
  if (!can_watch_dev_shm()) GTEST_SKIP() << "no /dev/shm to watch here";
  TempDir dir;
  Probe probe({"leak-shm", "spawn", "0"}, dir / "stderr");
  LeakedTree tree = parse_tree(probe.read_until_ready());
  ASSERT_EQ(tree.objects.size(), 10u) << probe.err();
  kill_pid(tree.pids["CHILD"]);
  kill_pid(probe.pid);
  probe.wait_exit();
  ASSERT_GE(wait_until([&] { return process_ended(tree.pids["TRACKER"]); }, 10), 0)
      << "the tracker should end with the tree";
  for (auto& [type, name] : tree.objects) {
    EXPECT_TRUE(exists(shm_file(type, name))) << "an untracked segment was removed: " << name;
    mp::platform::SharedMemorySegment::unlink(name);
  }
  EXPECT_EQ(probe.err().find("leaked"), std::string::npos) << probe.err();
}

}  // namespace

namespace {

// ---- SharedMemoryManager (CPython's test_shared_memory_SharedMemoryManager_basics) ----------

TEST_P(SharedMemoryAcross, ManagerUnlinksEverythingAtShutdown) {
  mp::SharedMemoryManager smm(&ctx());
  EXPECT_FALSE(smm.running());
  EXPECT_THROW(smm.SharedMemory(16), mp::ProcessError) << "not started";
  smm.start();
  EXPECT_THROW(smm.start(), mp::ProcessError);
  auto a = smm.SharedMemory(128);
  auto b = smm.SharedMemory(4096);
  auto sl = smm.ShareableList({std::int64_t{1}, std::string("two"), 3.0});
  auto listed = smm.list_segments();
  for (auto* n : {&a.name(), &b.name(), &sl.shm().name()}) {
    EXPECT_NE(std::find(listed.begin(), listed.end(), *n), listed.end()) << *n;
    EXPECT_TRUE(segment_exists(*n));
  }
  a.buf()[0] = std::byte{1};
  smm.shutdown();
  EXPECT_FALSE(smm.running());
  // (On Windows the names go with the last handle, and this process still holds a, b and sl.)
  if (mp::platform::named_objects_persist()) {
    for (auto* n : {&a.name(), &b.name(), &sl.shm().name()}) EXPECT_FALSE(segment_exists(*n)) << *n;
  }
  EXPECT_EQ(a.buf()[0], std::byte{1}) << "views stay usable after the names go";
  smm.shutdown();  // idempotent
  EXPECT_THROW(smm.SharedMemory(16), mp::ProcessError);
}

TEST_P(SharedMemoryAcross, ManagerDestructorShutsDown) {
  std::string name;
  {
    mp::SharedMemoryManager smm(&ctx());
    smm.start();
    // Kept open meanwhile: on Windows a segment lives only while someone holds it (the manager
    // keeps names, not handles, as CPython's).
    auto shm = smm.SharedMemory(64);
    name = shm.name();
    EXPECT_TRUE(segment_exists(name));
  }
  EXPECT_FALSE(segment_exists(name));
}

void create_through(mp::SharedMemoryManager smm, mp::Connection report) {
  auto shm = smm.SharedMemory(256);
  shm.buf()[0] = std::byte{77};
  report.send(shm.name());
  // Held until the parent has attached: on Windows a segment goes with its last handle.
  (void)report.recv<int>();
}

TEST_P(SharedMemoryAcross, AChildCreatesThroughThePassedManager) {
  mp::SharedMemoryManager smm(&ctx());
  smm.start();
  auto [mine, theirs] = mp::Pipe();
  auto p = ctx().Process(create_through, smm, theirs);
  p.start();
  auto name = mine.recv<std::string>();
  mp::SharedMemory seen(name);
  mine.send(1);
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_EQ(seen.buf()[0], std::byte{77});
  auto listed = smm.list_segments();
  EXPECT_NE(std::find(listed.begin(), listed.end(), name), listed.end());
  smm.shutdown();
  // (On Windows the name goes with the last handle, and `seen` still holds one.)
  if (mp::platform::named_objects_persist()) {
    EXPECT_FALSE(segment_exists(name));
  }
}

// A process that started a manager is SIGKILLed: the server sees its parent go and cleans up.
void start_manager_and_wait(mp::Connection report) {
  mp::SharedMemoryManager smm;
  smm.start();
  std::vector<std::string> names;
  std::vector<mp::SharedMemory> held;  // on Windows a segment lives only while someone holds it
  for (int i = 0; i < 3; ++i) names.push_back(held.emplace_back(smm.SharedMemory(1024)).name());
  report.send(names);
  std::this_thread::sleep_for(60s);
}

TEST_P(SharedMemoryAcross, ManagerCleansUpWhenItsOwnerIsKilled) {
  auto [mine, theirs] = mp::Pipe();
  auto p = ctx().Process(start_manager_and_wait, theirs);
  p.start();
  auto names = mine.recv<std::vector<std::string>>();
  for (auto& n : names) ASSERT_TRUE(segment_exists(n));
  p.kill();
  ASSERT_TRUE(p.join(kLong));
  double took = wait_until(
      [&] {
        for (auto& n : names) {
          if (segment_exists(n)) return false;
        }
        return true;
      },
      10);
  EXPECT_GE(took, 0) << "the manager's segments outlived its killed owner";
  EXPECT_LE(took, 2.0);
}

}  // namespace
