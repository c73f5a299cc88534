// The resource tracker and mp-tracker, against real processes, real named semaphores and shared
// memory in /dev/shm: the wire protocol, counted registrations, cleanup when a whole tree is
// SIGKILLed, and mp-tracker finding what remains when the tracker was killed too.
#include "probe_helpers.hpp"
#include "test_helpers.hpp"

#include <mp/mp.hpp>
#include <mp/resource_tracker.hpp>
#include <mp/synchronize.hpp>

#include "core/src/object_name.hpp"
#include "platform/named_objects.hpp"
#include "platform/process.hpp"
#include "platform/semaphore.hpp"
#include "tracker/tracker.hpp"

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#if !defined(_WIN32)
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

using namespace mp_test;
namespace tr = mp::detail::tracker;

// Windows has no resource tracker: the OS frees a named object with its last handle (as CPython,
// which runs none there).
constexpr const char* kNoTracker = "no resource tracker: the OS frees named objects with their last handle";

// The exit code of a program run by std::system.
int exit_status(int rc) {
#if defined(_WIN32)
  return rc;
#else
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
#endif
}

// mp-tracker's path as the shell wants it (backslashes and a drive on Windows), quoted.
std::string tracker_tool() {
  return "\"" + std::filesystem::absolute(MP_TRACKER_TOOL).make_preferred().string() + "\"";
}

// std::system; on Windows the whole line is quoted once more, since cmd /c strips the first and
// the last quote of a line that starts with one.
int run_shell(const std::string& command) {
  return std::system((mp_test::kWindows ? "\"" + command + "\"" : command).c_str());
}

// ---- protocol ----------------------------------------------------------------------------------

TEST(TrackerProtocol, NamesWithSeparatorsRoundTrip) {
  for (std::string name : {std::string("/mp-plain"), std::string("a:b:c"), std::string("with space"),
                           std::string("new\nline"), std::string("50%"), std::string("%41"),
                           std::string("REGISTER x y"), std::string("nul\0byte", 8), std::string("\xff\xfe")}) {
    tr::Command c{tr::Command::reg, "semaphore", name};
    std::string line = tr::encode(c);
    ASSERT_EQ(line.back(), '\n');
    ASSERT_EQ(line.find('\n'), line.size() - 1) << "a name must never end the line early";
    auto back = tr::parse(std::string_view(line).substr(0, line.size() - 1));
    ASSERT_TRUE(back.has_value()) << line;
    EXPECT_EQ(back->kind, tr::Command::reg);
    EXPECT_EQ(back->type, "semaphore");
    EXPECT_EQ(back->name, name);
  }
  auto probe = tr::parse("PROBE");
  ASSERT_TRUE(probe.has_value());
  EXPECT_EQ(probe->kind, tr::Command::probe);
}

TEST(TrackerProtocol, MalformedLinesAreRejected) {
  for (const char* line : {"", "GARBAGE", "REGISTER", "REGISTER semaphore", "REGISTER semaphore ",
                           "REGISTER bogus /x", "register semaphore /x", "REGISTER semaphore a b",
                           "REGISTER semaphore bad%zz", "REGISTER semaphore trunc%4", "UNREGISTER noop",
                           "PROBE extra", "REGISTER semaphore \x01"}) {
    EXPECT_FALSE(tr::parse(line).has_value()) << "accepted: '" << line << "'";
  }
  EXPECT_FALSE(tr::parse("REGISTER noop " + std::string(300, 'x')).has_value()) << "a name over 255 bytes";
}

TEST(TrackerApi, BadArgumentsAreClearErrors) {
  EXPECT_THROW(mp::resource_tracker::register_resource("/x", "nonsense"), mp::ValueError);
  EXPECT_THROW(mp::resource_tracker::register_resource("", "semaphore"), mp::ValueError);
  EXPECT_THROW(mp::resource_tracker::unregister_resource(std::string(300, 'x'), "noop"), mp::ValueError);
}

class TrackerTree : public mp_test::MethodTest<std::string> {
 protected:
  TempDir dir_;
};

// Fault test 1: a tree that made 10 named semaphores (and a held Lock) is SIGKILLed;
// the tracker removes them all within 2 s of the last exit and warns as CPython's does.
TEST_P(TrackerTree, SigkilledTreeIsCleanedUp) {
  MP_SKIP_ON_WINDOWS(kNoTracker);
  if (!can_watch_dev_shm()) GTEST_SKIP() << "no /dev/shm to watch here";
  Probe probe({"leak", GetParam(), "5", "5"}, dir_ / "stderr");
  LeakedTree tree = parse_tree(probe.read_until_ready());
  ASSERT_EQ(tree.objects.size(), 11u) << probe.err();
  ASSERT_GT(tree.pids["CHILD"], 0);
  ASSERT_GT(tree.pids["TRACKER"], 0);
  for (auto& [type, name] : tree.objects) ASSERT_TRUE(exists(shm_file(type, name))) << name;

  kill_pid(tree.pids["CHILD"]);
  kill_pid(probe.pid);
  probe.wait_exit();
  // The child is re-parented; it is gone once it is gone or a zombie.
  ASSERT_GE(wait_until([&] { return process_ended(tree.pids["CHILD"]); }, 10), 0);
  double took = wait_until(
      [&] {
        for (auto& [type, name] : tree.objects) {
          if (exists(shm_file(type, name))) return false;
        }
        return true;
      },
      10);
  std::string err;
  wait_until([&] { return (err = probe.err()).find("leaked shared_memory") != std::string::npos; }, 5);
  ASSERT_GE(took, 0) << "leftovers 10 s after the tree died\n" << err;
  EXPECT_LE(took, 2.0) << err;
  EXPECT_NE(err.find("resource_tracker: There appear to be 10 leaked semaphore objects to clean up at shutdown"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("leaked shared_memory objects"), std::string::npos) << err;
  EXPECT_TRUE(wait_until([&] { return process_ended(tree.pids["TRACKER"]); }, 5) >= 0)
      << "the tracker should end once its work is done";
}

// Fault test 2: the tracker is SIGKILLed too; mp-tracker finds the leftovers and removes them.
TEST_P(TrackerTree, MpTrackerCleansWhatAKilledTrackerLeft) {
  MP_SKIP_ON_WINDOWS(kNoTracker);
  if (!can_watch_dev_shm()) GTEST_SKIP() << "no /dev/shm to watch here";
  AdoptOrphans adopt;  // the creators must be gone, not zombies, when mp-tracker judges them
  Probe probe({"leak", GetParam(), "5", "5"}, dir_ / "stderr");
  LeakedTree tree = parse_tree(probe.read_until_ready());
  ASSERT_EQ(tree.objects.size(), 11u) << probe.err();
  kill_pid(tree.pids["TRACKER"]);
  ASSERT_GE(wait_until([&] { return process_ended(tree.pids["TRACKER"]); }, 10), 0);
  kill_pid(tree.pids["CHILD"]);
  kill_pid(probe.pid);
  probe.wait_exit();
  ASSERT_TRUE(adopt.wait_gone(tree.pids["CHILD"], 10));
  std::this_thread::sleep_for(300ms);
  for (auto& [type, name] : tree.objects) ASSERT_TRUE(exists(shm_file(type, name))) << "nobody removed " << name;

  // Only this tree's objects: other tests running meanwhile have theirs.
  std::string names;
  for (auto& [type, name] : tree.objects) names += " " + name;
  auto run = [&](const std::string& args) {
    std::string path = dir_ / "tool.out";
    int rc = run_shell((tracker_tool() + " " + args + names + " > \"" + path + "\" 2>&1").c_str());
    return std::make_pair(exit_status(rc), read_file(path).value_or(""));
  };
  auto [lrc, listing] = run("list --json");
  EXPECT_EQ(lrc, 0) << listing;
  for (auto& [type, name] : tree.objects) {
    auto at = listing.find("\"name\": \"" + name + "\"");
    ASSERT_NE(at, std::string::npos) << name << "\n" << listing;
    auto line = listing.substr(at, listing.find('}', at) - at);
    EXPECT_NE(line.find("\"leaked\": true"), std::string::npos) << line;
    EXPECT_NE(line.find("\"creator_alive\": false"), std::string::npos) << line;
  }
  auto [drc, dry] = run("clean --dry-run");
  EXPECT_EQ(drc, 0) << dry;
  for (auto& [type, name] : tree.objects) {
    EXPECT_NE(dry.find("would remove " + type + " " + name), std::string::npos) << dry;
    EXPECT_TRUE(exists(shm_file(type, name))) << "--dry-run removed " << name;
  }
  auto [crc, cleaned] = run("clean");
  EXPECT_EQ(crc, 0) << cleaned;
  for (auto& [type, name] : tree.objects) {
    EXPECT_NE(cleaned.find("removed " + type + " " + name), std::string::npos) << cleaned;
    EXPECT_FALSE(exists(shm_file(type, name))) << name << " is still there";
  }
}

INSTANTIATE_TEST_SUITE_P(Methods, TrackerTree, testing::Values("spawn", "forkserver"));

// Names with the protocol's separators, counted registrations, malformed lines: through a real
// tracker process, whose verdict comes when the probe exits.
TEST(Tracker, ProtocolThroughARealTracker) {
  MP_SKIP_ON_WINDOWS(kNoTracker);
  TempDir dir;
  const std::string prefix = "/mp-test-" + mp::detail::make_object_name().substr(4, 12) + "-";
  Probe probe({"protocol", prefix}, dir / "stderr");
  auto lines = probe.read_until_ready();
  int status = probe.wait_exit();
  ASSERT_EQ(exit_status(status), 0) << probe.err();
  std::string out;
  for (auto& l : lines) out += l + "\n";
  EXPECT_NE(out.find("API: resource_tracker: cannot register"), std::string::npos) << out;
  int tracker = 0;
  for (auto& l : lines) {
    if (l.rfind("TRACKER ", 0) == 0) tracker = std::stoi(l.substr(8));
  }
  ASSERT_GT(tracker, 0) << out;
  ASSERT_GE(wait_until([&] { return process_ended(tracker); }, 10), 0) << "the tracker did not end";
  std::string err = probe.err();
  // Five odd names and "twice": six shared-memory objects, one noop registered after the junk.
  EXPECT_NE(err.find("There appear to be 6 leaked shared_memory objects"), std::string::npos) << err;
  EXPECT_NE(err.find("There appear to be 1 leaked noop objects"), std::string::npos) << err;
  int malformed = 0;
  for (std::size_t at = 0; (at = err.find("ignored a malformed line", at)) != std::string::npos; ++at) ++malformed;
  EXPECT_EQ(malformed, 6) << err;
  for (std::string n : {"a:b:c", "with space", "50%25", "tab\there", "REGISTER noop x", "twice"}) {
    EXPECT_FALSE(exists("/dev/shm/" + prefix.substr(1) + n)) << "not cleaned: " << n;
  }
  const std::string once = "/dev/shm/" + prefix.substr(1) + "once";
  EXPECT_TRUE(exists(once)) << "registered and unregistered: the tracker must leave it";
  std::error_code ec;
  std::filesystem::remove(once, ec);
}

// A process that only opened a semaphore never removes it (CPython gh-82300): a spawn child
// receives it, uses it, exits; the name is still there for the next child.
void use_and_exit(mp::Semaphore s) { s.release(); }

TEST(Tracker, AttachingNeverRemoves) {
  auto& ctx = mp::get_context("spawn");
  mp::Semaphore sem = ctx.Semaphore(0);
  for (int i = 0; i < 2; ++i) {
    auto p = ctx.Process(use_and_exit, sem);
    p.start();
    ASSERT_TRUE(p.join(kLong));
    ASSERT_EQ(p.exitcode(), 0);
    ASSERT_TRUE(sem.acquire(true, mp::Seconds(5)));
    EXPECT_NO_THROW(mp::platform::NamedSemaphore::open(sem.name())) << "a child removed the name";
  }
  if (!mp::platform::named_objects_persist()) return;  // Windows: no tracker to ask about
  ASSERT_TRUE(mp::resource_tracker::pid().has_value());
  EXPECT_TRUE(mp::platform::process_exists(*mp::resource_tracker::pid()));
}

// One tracker for the tree: spawn and forkserver children get the parent's.
void report_tracker(mp::Connection c) { c.send(mp::resource_tracker::pid().value_or(-1)); }

TEST(Tracker, ChildrenShareTheParentsTracker) {
  MP_SKIP_ON_WINDOWS(kNoTracker);
  mp::resource_tracker::ensure_running();
  auto mine = mp::resource_tracker::pid();
  ASSERT_TRUE(mine.has_value());
  for (const char* method : {"fork", "spawn", "forkserver"}) {
    if (!method_available(method)) continue;
    auto [a, b] = mp::Pipe();
    auto p = mp::get_context(method).Process(report_tracker, b);
    p.start();
    auto theirs = a.recv<int>();
    ASSERT_TRUE(p.join(kLong));
    EXPECT_EQ(theirs, *mine) << method;
  }
}

// ensure_running() replaces a tracker that died, with CPython's warning.
TEST(Tracker, ADeadTrackerIsReplaced) {
  MP_SKIP_ON_WINDOWS(kNoTracker);
  mp::resource_tracker::ensure_running();
  int first = mp::resource_tracker::pid().value();
  kill_pid(first);
  ASSERT_GE(wait_until([&] { return !mp::platform::process_exists(first); }, 10), 0);
  TempDir dir;
  StderrCapture cap("fork", dir / "err");
  mp::resource_tracker::ensure_running();
  std::string err = cap.finish();
  int second = mp::resource_tracker::pid().value();
  EXPECT_NE(first, second);
  EXPECT_TRUE(mp::platform::process_exists(second));
  EXPECT_NE(err.find("resource_tracker: process died unexpectedly, relaunching"), std::string::npos) << err;
}

// ---- mp-tracker's command line -------------------------------------------------------------

TEST(MpTrackerTool, HelpAndBadArguments) {
  TempDir dir;
  auto run = [&](const std::string& args) {
    std::string path = dir / "out";
    int rc = run_shell((tracker_tool() + " " + args + " > \"" + path + "\" 2>&1").c_str());
    return std::make_pair(exit_status(rc), read_file(path).value_or(""));
  };
  auto [hrc, help] = run("--help");
  EXPECT_EQ(hrc, 0);
  for (const char* word : {"list [--json]", "clean [--dry-run] [--all]", "Windows"}) {
    EXPECT_NE(help.find(word), std::string::npos) << help;
  }
  for (const char* bad : {"", "frobnicate", "list --yaml", "clean --force"}) {
    auto [rc, out] = run(bad);
    EXPECT_EQ(rc, 2) << bad;
    EXPECT_NE(out.find("mp-tracker: "), std::string::npos) << out;
  }
  auto [lrc, list] = run("list");
  EXPECT_EQ(lrc, 0) << list;
  if (mp::platform::can_list_named_objects()) {
    EXPECT_NE(list.find("TYPE"), std::string::npos) << list;
  } else {
    // Nothing to scan (macOS): it says so, and how to look at given names instead.
    EXPECT_NE(list.find("this system cannot list named semaphores and shared memory"), std::string::npos) << list;
    EXPECT_NE(list.find("give the names to look at"), std::string::npos) << list;
    auto [crc, cleaned] = run("clean");
    EXPECT_EQ(crc, 0) << cleaned;
    EXPECT_NE(cleaned.find("this system cannot list"), std::string::npos) << cleaned;
    auto [jrc, json] = run("list --json");
    EXPECT_EQ(jrc, 0) << json;
    EXPECT_NE(json.find("[]"), std::string::npos) << json;
  }
}

// mp-tracker clean leaves what a live process uses, and --all removes it too.
TEST(MpTrackerTool, CleanSparesLiveObjectsUnlessAll) {
  MP_SKIP_ON_WINDOWS("named objects cannot be listed (no resource tracker; the OS frees them with their last handle)");
  if (!can_watch_dev_shm()) GTEST_SKIP() << "no /dev/shm to watch here";
  TempDir dir;
  auto& ctx = mp::get_context("spawn");
  mp::Semaphore sem = ctx.Semaphore(1);  // named, made by this (live) process
  const std::string path = shm_file("semaphore", sem.name());
  ASSERT_TRUE(exists(path));
  std::string out_path = dir / "out";
  int rc = run_shell((tracker_tool() + " clean " + sem.name() + " > \"" + out_path + "\" 2>&1").c_str());
  EXPECT_EQ(exit_status(rc), 0);
  EXPECT_TRUE(exists(path)) << read_file(out_path).value_or("");
  EXPECT_NE(read_file(out_path).value_or("").find("removed 0 objects"), std::string::npos);
  rc = run_shell(
      (tracker_tool() + " clean --all --dry-run " + sem.name() + " > \"" + out_path + "\" 2>&1").c_str());
  EXPECT_NE(read_file(out_path).value_or("").find("would remove semaphore " + sem.name()), std::string::npos);
  EXPECT_TRUE(exists(path));
}

}  // namespace
