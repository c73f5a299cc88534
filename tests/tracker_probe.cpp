// A program for test_tracker.cpp: its own process tree, with its own resource tracker.
//   tracker_probe leak <start method> <semaphores in the parent> <semaphores in a child>
//     Creates the semaphores (plus a held Lock in the parent), prints
//     "PID p", "CHILD c", "TRACKER t", one "NAME type name" per object, then "READY", and waits
//     to be killed (at most 60 s).
//   tracker_probe leak-shm <start method> <track: 0 or 1>
//     As leak, with 5 SharedMemory segments and 5 Value<int> in the parent and as many in a
//     child (track=0: the segments only, untracked).
//   tracker_probe protocol <name prefix>
//     Talks to its tracker directly: names holding the protocol's separators, a name registered
//     twice and unregistered once, one registered and unregistered, malformed lines; then exits.
#include <mp/mp.hpp>
#include <mp/resource_tracker.hpp>
#include <mp/shared_memory.hpp>
#include <mp/sharedctypes.hpp>
#include <mp/synchronize.hpp>

#include "platform/pipe.hpp"
#include "platform/shm.hpp"
#include "tracker/tracker.hpp"

#include <chrono>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace {

void child_work(mp::Connection conn, int n) {
  std::vector<mp::Semaphore> sems;
  for (int i = 0; i < n; ++i) sems.emplace_back(0);
  std::vector<std::string> names;
  for (auto& s : sems) names.push_back(s.name());
  conn.send(names);
  std::this_thread::sleep_for(std::chrono::seconds(60));
}

int leak(const std::string& method, int in_parent, int in_child) {
  mp::set_start_method(method);
  std::vector<mp::Semaphore> sems;
  for (int i = 0; i < in_parent; ++i) sems.emplace_back(0);
  mp::Lock lock;
  lock.acquire();  // the Lock is held when the tree dies
  auto [mine, theirs] = mp::Pipe();
  mp::Process child(child_work, theirs, in_child);
  child.start();
  auto child_names = mine.recv<std::vector<std::string>>();
  std::cout << "PID " << mp::current_process().pid().value_or(0) << "\n";
  std::cout << "CHILD " << child.pid().value_or(0) << "\n";
  std::cout << "TRACKER " << mp::resource_tracker::pid().value_or(0) << "\n";
  for (auto& s : sems) std::cout << "NAME semaphore " << s.name() << "\n";
  for (auto& n : child_names) std::cout << "NAME semaphore " << n << "\n";
  std::cout << "NAME shared_memory " << lock.name() << "\n";
  std::cout << "READY" << std::endl;
  std::this_thread::sleep_for(std::chrono::seconds(60));
  return 3;
}

struct ShmSet {
  std::vector<mp::SharedMemory> segments;
  std::vector<mp::Value<int>> values;
  std::vector<std::string> names;  // segments, then the values' locks
  explicit ShmSet(bool track) {
    for (int i = 0; i < 5; ++i) {
      segments.emplace_back(std::nullopt, true, 4096 * (i + 1), track);
      std::memset(segments.back().buf().data(), i, segments.back().size());
      names.push_back("/" + segments.back().name());
    }
    if (!track) return;
    for (int i = 0; i < 5; ++i) {
      values.emplace_back(i);
      names.push_back(values.back().get_lock().name());
    }
  }
};

void shm_child(mp::Connection conn, bool track) {
  ShmSet set(track);
  conn.send(set.names);
  std::this_thread::sleep_for(std::chrono::seconds(60));
}

int leak_shm(const std::string& method, bool track) {
  mp::set_start_method(method);
  ShmSet set(track);
  auto [mine, theirs] = mp::Pipe();
  mp::Process child(shm_child, theirs, track);
  child.start();
  auto child_names = mine.recv<std::vector<std::string>>();
  std::cout << "PID " << mp::current_process().pid().value_or(0) << "\n";
  std::cout << "CHILD " << child.pid().value_or(0) << "\n";
  std::cout << "TRACKER " << mp::resource_tracker::pid().value_or(0) << "\n";
  for (auto& n : set.names) std::cout << "NAME shared_memory " << n << "\n";
  for (auto& n : child_names) std::cout << "NAME shared_memory " << n << "\n";
  std::cout << "READY" << std::endl;
  std::this_thread::sleep_for(std::chrono::seconds(60));
  return 3;
}

int protocol(const std::string& prefix) {
  namespace rt = mp::resource_tracker;
  // Real shared-memory objects whose names hold the protocol's separators.
  const std::vector<std::string> odd = {prefix + "a:b:c", prefix + "with space", prefix + "50%25",
                                        prefix + "tab\there", prefix + "REGISTER noop x"};
  std::vector<mp::platform::SharedMemorySegment> keep;
  for (auto& n : odd) {
    keep.push_back(mp::platform::SharedMemorySegment::create(n, 64));
    rt::register_resource(n, "shared_memory");
  }
  // Counted registrations: twice then once off -> still cleaned; once and once off -> kept.
  const std::string twice = prefix + "twice", once = prefix + "once";
  keep.push_back(mp::platform::SharedMemorySegment::create(twice, 64));
  keep.push_back(mp::platform::SharedMemorySegment::create(once, 64));
  rt::register_resource(twice, "shared_memory");
  rt::register_resource(twice, "shared_memory");
  rt::unregister_resource(twice, "shared_memory");
  rt::register_resource(once, "shared_memory");
  rt::unregister_resource(once, "shared_memory");
  // Bad input at the API: a clear error, nothing sent.
  try {
    rt::register_resource(prefix + "x", "no_such_type");
    std::cout << "NO ERROR for an unknown type\n";
  } catch (const mp::ValueError& e) {
    std::cout << "API: " << e.what() << "\n";
  }
  // Malformed lines straight down the pipe: the tracker reports and skips them.
  auto fd = mp::detail::tracker::handle_for_child();
  std::string junk = "GARBAGE\nREGISTER no_such_type /x\nREGISTER noop\nREGISTER noop bad%zz\n" +
                     std::string(700, 'A') + "\nUNREGISTER\n";
  mp::platform::write_all(fd, std::as_bytes(std::span(junk.data(), junk.size())));
  // The tracker is still there and counting.
  rt::register_resource(prefix + "after-junk", "noop");
  std::cout << "TRACKER " << rt::pid().value_or(0) << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  mp::freeze_support();
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 4 && args[0] == "leak") return leak(args[1], std::stoi(args[2]), std::stoi(args[3]));
  if (args.size() == 2 && args[0] == "protocol") return protocol(args[1]);
  if (args.size() == 3 && args[0] == "leak-shm") return leak_shm(args[1], args[2] == "1");
  std::cerr << "usage: tracker_probe leak <method> <n> <m> | protocol <prefix>\n";
  return 2;
}
