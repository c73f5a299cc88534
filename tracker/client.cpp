// The client side of the resource tracker: start it, talk to it, pass it on to children. Also
// the program-start hook that turns a process started with --mp-tracker into the tracker.
#include <mp/exceptions.hpp>
#include <mp/resource_tracker.hpp>

#include "tracker.hpp"

#include "platform/pipe.hpp"
#include "platform/named_objects.hpp"
#include "platform/process.hpp"
#include "platform/unique_handle.hpp"

#include <mutex>
#include <new>
#include <span>
#include <system_error>

namespace mp::detail::tracker {

namespace {

// The process-wide client. Forked children keep the socket end (that is how they share the tree's
// tracker); the mutex is remade in the child.
struct Client {
  std::mutex mutex;
  platform::UniqueHandle fd;  // our end of the tracker's socket pair
  int pid = -1;               // the tracker's pid, when known
  bool ours = false;          // this process started it (so reaps it if it dies)
};

Client& client() {
  static Client* c = [] {
    auto* made = new Client;  // never destroyed: children and exit paths may still write
    platform::register_atfork(nullptr, nullptr, [] { new (&client().mutex) std::mutex; });
    return made;
  }();
  return *c;
}

bool send_line(Client& c, const std::string& line) {
  if (!c.fd) return false;
  try {
    // One send() with MSG_NOSIGNAL: a line is far below a socket buffer, so it arrives whole
    // even with many writers.
    platform::write_all2(c.fd.get(), std::as_bytes(std::span(line.data(), line.size())), {},
                         platform::HandleKind::socket);
    return true;
  } catch (const std::system_error&) {
    return false;  // EPIPE: the tracker is gone
  }
}

void launch(Client& c) {
  // A socket pair rather than a pipe: writes need no SIGPIPE guard (MSG_NOSIGNAL), and the
  // tracker still reads end-of-file once every process holding the other end has gone.
  platform::HandlePair p = platform::make_socketpair();
  std::string exe = platform::executable_path();
  int pid = platform::spawn_process(exe, {exe, flag}, {p.first.get()});
  c.fd = std::move(p.second);
  c.pid = pid;
  c.ours = true;
}

void ensure_locked(Client& c) {
  if (c.fd && send_line(c, encode(Command{}))) return;
  if (c.fd) {
    platform::write_stderr("resource_tracker: process died unexpectedly, relaunching.  Some resources might leak.\n");
    if (c.ours && c.pid > 0) (void)platform::reap(c.pid, false);
    c.fd.reset();
  }
  launch(c);
}

void check(const std::string& name, const std::string& type) {
  if (!known_type(type)) throw ValueError("resource_tracker: cannot register '" + name + "': unknown type '" + type + "'");
  if (name.empty() || name.size() > max_name) {
    throw ValueError("resource_tracker: a resource name must have 1 to " + std::to_string(max_name) + " bytes");
  }
}

void send(Command::Kind kind, const std::string& name, const std::string& type) {
  check(name, type);
  // Where the OS frees named objects with their last handle (Windows) there is nothing to track,
  // and no tracker process is started (as CPython, which has none there).
  if (!platform::named_objects_persist()) return;
  Command cmd{kind, type, name};
  std::string line = encode(cmd);
  Client& c = client();
  std::lock_guard lock(c.mutex);
  if (kind == Command::unreg && !c.fd) return;  // never registered through this process
  if (!c.fd) launch(c);
  if (send_line(c, line)) return;
  ensure_locked(c);
  if (!send_line(c, line)) throw ProcessError("resource_tracker: cannot reach the tracker process");
}

}  // namespace

native_handle_t handle_for_child() {
  Client& c = client();
  std::lock_guard lock(c.mutex);
  ensure_locked(c);
  return c.fd.get();
}

void adopt_handle(native_handle_t h, int tracker_pid) {
  Client& c = client();
  std::lock_guard lock(c.mutex);
  c.fd.reset(h);
  c.pid = tracker_pid;
  c.ours = false;
}

std::optional<int> known_pid() {
  Client& c = client();
  std::lock_guard lock(c.mutex);
  if (!c.fd || c.pid <= 0) return std::nullopt;
  return c.pid;
}

// A process started as the tracker becomes it before any of the program's own initialisers run
// (and whether or not main() calls freeze_support()): the priority places this right after the
// capture of argv.
// (GCC and Clang only: MSVC has no constructor priority, and Windows runs no tracker - see
// named_objects_persist.)
#if defined(__GNUC__)
__attribute__((constructor(102))) static void become_tracker_if_asked() {
  std::vector<std::string> args = platform::process_arguments();
  if (args.size() >= 2 && args[1] == flag) {
    int code = 1;
    try {
      code = server_main(platform::inherited_handle(0).release());
    } catch (const std::exception& e) {
      platform::write_stderr(std::string("resource_tracker: ") + e.what() + "\n");
    }
    platform::exit_now(code);
  }
}
#endif

}  // namespace mp::detail::tracker

namespace mp::resource_tracker {

void ensure_running() {
  if (!platform::named_objects_persist()) return;
  auto& c = detail::tracker::client();
  std::lock_guard lock(c.mutex);
  detail::tracker::ensure_locked(c);
}

void register_resource(const std::string& name, const std::string& type) {
  detail::tracker::send(detail::tracker::Command::reg, name, type);
}

void unregister_resource(const std::string& name, const std::string& type) {
  detail::tracker::send(detail::tracker::Command::unreg, name, type);
}

std::optional<int> pid() { return detail::tracker::known_pid(); }

}  // namespace mp::resource_tracker
