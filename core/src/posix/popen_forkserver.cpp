// The forkserver start method, client side (CPython's popen_forkserver.py + forkserver.py).
// One server per process tree root, spawned from this executable in a clean single-threaded state;
// one authenticated control connection to it per process; each child is forked by the server and
// reports its pid, then its exit code, on the sentinel.
#include "forkserver_protocol.hpp"
#include "process_state.hpp"

#include <mp/logging.hpp>

#include "platform/handle_passing.hpp"
#include "platform/pipe.hpp"
#include "platform/process.hpp"
#include "platform/socket.hpp"
#include "platform/wait.hpp"

#include <mutex>

namespace mp::detail {

std::string forkserver_flag();

namespace {

class ForkServerPopen final : public Popen {
 public:
  ForkServerPopen(int pid, platform::UniqueHandle sentinel, platform::UniqueHandle parent_alive)
      : Popen(pid, std::move(sentinel), std::move(parent_alive)) {}

  std::optional<int> poll() override {
    std::lock_guard lock(mutex_);
    if (!returncode_ && sentinel_ && platform::is_ready(sentinel_.get())) {
      std::int32_t code;
      std::span<const std::byte> buf(reinterpret_cast<std::byte*>(&code), sizeof code);
      bool got = false;
      try {
        got = platform::read_exact(sentinel_.get(), buf);
      } catch (const std::system_error&) {
      }
      returncode_ = got ? code : 255;  // the server went away without a status (CPython: 255)
    }
    return returncode_;
  }

  std::optional<int> wait(Timeout timeout) override {
    if (auto r = poll()) return r;
    native_handle_t h = sentinel_.get();
    if (h == invalid_native_handle) return returncode_;
    if (platform::wait_ready(std::span(&h, 1), timeout).empty()) return std::nullopt;
    return poll();
  }

 private:
  std::mutex mutex_;
};

struct Client {
  std::mutex mutex;
  int server_pid = -1;
  std::string address;
  platform::UniqueHandle alive;  // the server exits when every copy of this is closed
  platform::UniqueHandle conn;   // authenticated control connection
  AuthKey key;
};

Client& client() {
  static Client* c = new Client;
  return *c;
}

void start_server(Client& c) {
  c.key = AuthKey::random();
  std::string address;
  platform::UniqueHandle listener = platform::listen_local(address, 128);
  platform::HandlePair alive = platform::make_pipe();
  platform::HandlePair config = platform::make_socketpair();
  std::string exe = get_executable();
  c.server_pid = platform::spawn_process(exe, {exe, forkserver_flag()},
                                         {listener.get(), alive.first.get(), config.first.get()});
  listener.reset();
  alive.first.reset();
  config.first.reset();
  ForkServerConfig cfg;
  cfg.key = c.key;
  cfg.preload = forkserver_preload_names();
  Logger& log = get_logger();
  cfg.log_level = static_cast<int>(log.level());
  cfg.log_to_stderr = log.has_stderr_handler();
  cfg.address = address;
  cfg.executable = exe;
  send_frame(config.second.get(), codec<ForkServerConfig>::encode(cfg));
  c.alive = std::move(alive.second);
  c.address = std::move(address);
  log.debug("forkserver started (pid " + std::to_string(c.server_pid) + ")");
}

void drop_server(Client& c) {
  c.conn.reset();
  c.alive.reset();
  if (c.server_pid > 0) platform::reap(c.server_pid, false);
  c.server_pid = -1;
  platform::remove_local_address(c.address);
  c.address.clear();
}

void ensure_connected(Client& c) {
  if (c.server_pid > 0 && platform::reap(c.server_pid, false)) {
    get_logger().debug("forkserver (pid " + std::to_string(c.server_pid) + ") has exited; starting another");
    c.server_pid = -1;
    drop_server(c);
  }
  if (c.server_pid < 0) start_server(c);
  if (!c.conn) {
    c.conn = platform::connect_local(c.address);
    answer_challenge(c.conn.get(), c.key);
    deliver_challenge(c.conn.get(), c.key);
  }
}

}  // namespace

std::optional<ForkServerInfo> forkserver_info() {
  Client& c = client();
  std::lock_guard lock(c.mutex);
  if (c.server_pid < 0) return std::nullopt;
  return ForkServerInfo{c.server_pid, c.address};
}

void forkserver_client_lock() noexcept { client().mutex.lock(); }
void forkserver_client_unlock() noexcept { client().mutex.unlock(); }
void forkserver_client_after_fork() noexcept {
  // The server is our parent's: a forked child starts its own if it needs one.
  Client& c = client();
  c.conn.reset();
  c.alive.reset();
  c.server_pid = -1;
  c.address.clear();
}

namespace {

// Hands one request to the server; returns the child's pid, or nullopt if the server vanished
// before answering (the request was then not served and may be sent again).
std::optional<int> request_fork(Client& c, const std::vector<native_handle_t>& fds, platform::HandlePair& status,
                                platform::HandlePair& control, const std::vector<std::byte>& prep) {
  auto header = fork_request(static_cast<std::uint32_t>(fds.size()));
  {
    std::lock_guard lock(c.mutex);
    for (int attempt = 0;; ++attempt) {
      try {
        ensure_connected(c);
        platform::send_handles(c.conn.get(), header, fds);
        break;
      } catch (const AuthenticationError&) {
        drop_server(c);
        throw;
      } catch (const std::exception& e) {
        // The server (or our connection to it) is gone: start afresh once, then give up clearly.
        std::optional<int> server_exit;
        if (c.server_pid > 0) server_exit = platform::reap(c.server_pid, false);
        drop_server(c);
        if (attempt > 0) {
          throw ProcessError(std::string("mp: the forkserver is not working (") + e.what() + ")" +
                             (server_exit ? ", it exited with code " + std::to_string(*server_exit) : std::string()) +
                             "; its own error output says why (a main() that does not begin with "
                             "mp::freeze_support() is the usual cause)");
        }
      }
    }
  }
  status.second.reset();
  control.first.reset();
  // The preparation data goes now, before the pid comes back: the child finds it waiting instead
  // of costing the two processes another round trip. (If it does not fit the socket buffer, the
  // write completes as the child reads; the server forks whatever we do.)
  try {
    send_frame(control.second.get(), prep);
  } catch (const std::system_error&) {
    // The child or the server is gone; what the sentinel says next tells which.
  }
  std::int32_t pid = 0;
  if (!platform::read_exact(status.first.get(),
                            std::span<const std::byte>(reinterpret_cast<std::byte*>(&pid), sizeof pid))) {
    std::lock_guard lock(c.mutex);
    drop_server(c);
    return std::nullopt;
  }
  return pid;
}

}  // namespace

std::unique_ptr<Popen> launch_forkserver(const SpawnRequest& request) {
  if (request.handles.size() + 2 > kMaxForkHandles) throw ValueError("too many handles to send to a forkserver child");
  Client& c = client();
  for (int attempt = 0;; ++attempt) {
    platform::HandlePair status = platform::make_pipe();
    platform::HandlePair control = platform::make_socketpair();
    std::vector<native_handle_t> fds{control.first.get(), status.second.get()};
    fds.insert(fds.end(), request.handles.begin(), request.handles.end());
    std::optional<int> pid = request_fork(c, fds, status, control, request.prep);
    if (!pid) {
      if (attempt == 0) continue;  // the server died with our request: once more, with a new one
      throw ProcessError("mp: the forkserver did not start the child (it died twice)");
    }
    return std::make_unique<ForkServerPopen>(*pid, std::move(status.first), std::move(control.second));
  }
}

}  // namespace mp::detail
