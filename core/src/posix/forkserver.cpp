// The forkserver process itself: a fresh run of the executable (started with --mp-forkserver)
// that forks a child for each authenticated request and reports its pid and exit code.
#include "forkserver_protocol.hpp"
#include "process_state.hpp"

#include <mp/logging.hpp>

#include "platform/handle_passing.hpp"
#include "platform/pipe.hpp"
#include "platform/process.hpp"
#include "platform/socket.hpp"
#include "platform/wait.hpp"

#include <map>

namespace mp::detail {

namespace {

void write_int(native_handle_t h, std::int32_t v) {
  try {
    platform::write_all(h, std::span<const std::byte>(reinterpret_cast<const std::byte*>(&v), sizeof v));
  } catch (const std::system_error&) {
    // The parent closed its sentinel (it closed or abandoned the Process): nothing to tell.
  }
}

void run_preload(const std::vector<std::string>& names) {
  for (const auto& name : names) {
    const TaskRegistration* reg = find_task(name);
    if (reg == nullptr || reg->function == nullptr) {
      get_logger().warning("forkserver: preload function '" + name + "' is not registered");
      continue;
    }
    try {
      Decoder none({});
      reg->trampoline(none);
    } catch (const std::exception& e) {
      get_logger().warning("forkserver: preload function '" + name + "' failed: " + e.what());
    }
  }
}

void serve() {
  const int first = platform::first_inherited_handle;
  platform::UniqueHandle listener(first);
  platform::UniqueHandle alive(first + 1);
  platform::UniqueHandle config_channel(first + 2);
  for (int fd = first; fd < first + 3; ++fd) platform::set_inheritable(fd, false);
  ForkServerConfig cfg = codec<ForkServerConfig>::decode(recv_frame(config_channel.get()));
  config_channel.reset();
  if (cfg.log_to_stderr) log_to_stderr(static_cast<LogLevel>(cfg.log_level));
  set_executable(cfg.executable);
  platform::ignore_broken_pipes();
  run_preload(cfg.preload);
  get_logger().debug("forkserver: serving");

  platform::ChildExitNotifier notifier;
  std::map<int, platform::UniqueHandle> status_of;  // child pid → the write end of its sentinel
  std::vector<platform::UniqueHandle> clients;

  for (;;) {
    std::vector<native_handle_t> handles{alive.get(), listener.get(), notifier.handle()};
    for (auto& c : clients) handles.push_back(c.get());
    std::vector<std::size_t> ready = platform::wait_ready(handles, std::nullopt);
    std::vector<std::size_t> dead_clients;
    for (std::size_t idx : ready) {
      if (idx == 0) {
        // EOF: no process holding the alive pipe is left. The address's directory is the
        // client's private one (no abstract names): it could not go at the client's exit while
        // the address was in it.
        platform::remove_local_address(cfg.address);
        platform::remove_local_address_directory(cfg.address);
        get_logger().debug("forkserver: no clients left; exiting");
        platform::exit_now(0);
      } else if (idx == 2) {
        notifier.drain();
        while (auto r = platform::reap_any()) {
          auto it = status_of.find(r->first);
          if (it == status_of.end()) continue;
          write_int(it->second.get(), r->second);
          status_of.erase(it);
        }
      } else if (idx == 1) {
        platform::UniqueHandle conn = platform::accept_connection(listener.get());
        try {
          platform::set_receive_timeout(conn.get(), 10.0);
          deliver_challenge(conn.get(), cfg.key);
          answer_challenge(conn.get(), cfg.key);
          clients.push_back(std::move(conn));
        } catch (const std::exception& e) {
          get_logger().warning(std::string("forkserver: refused a connection: ") + e.what());
        }
      } else {
        std::size_t ci = idx - 3;
        native_handle_t conn = clients[ci].get();
        std::array<std::byte, kForkRequestSize> header;
        std::vector<platform::UniqueHandle> fds;
        std::uint32_t count = 0;
        bool ok = false;
        try {
          ok = platform::recv_handles(conn, header, fds, kMaxForkHandles) && parse_fork_request(header, count) &&
               count == fds.size();
        } catch (const std::exception&) {
          ok = false;
        }
        if (!ok) {
          dead_clients.push_back(ci);
          continue;
        }
        int pid;
        try {
          pid = platform::fork_process();
        } catch (const std::system_error& e) {
          // Out of processes: the client reads EOF instead of a pid, and the server goes on.
          get_logger().warning(std::string("forkserver: ") + e.what());
          continue;
        }
        if (pid == 0) {
          // The child: nothing of the server's may stay open in it.
          notifier.reset_in_child();
          listener.reset();
          alive.reset();
          for (auto& c : clients) c.reset();
          for (auto& [p, h] : status_of) h.reset();
          fds[1].reset();  // the server reports our exit, not us
          platform::UniqueHandle control = std::move(fds[0]);
          std::vector<platform::UniqueHandle> rest;
          for (std::size_t i = 2; i < fds.size(); ++i) rest.push_back(std::move(fds[i]));
          run_prepared_child(std::move(control), platform::UniqueHandle(), std::move(rest));
        }
        write_int(fds[1].get(), pid);
        status_of[pid] = std::move(fds[1]);
      }
    }
    for (auto it = dead_clients.rbegin(); it != dead_clients.rend(); ++it) {
      clients.erase(clients.begin() + static_cast<std::ptrdiff_t>(*it));
    }
  }
}

}  // namespace

void forkserver_main() {
  int code = 0;
  try {
    serve();
  } catch (const std::exception& e) {
    platform::write_stderr(std::string("mp forkserver: ") + e.what() + "\n");
    code = 1;
  }
  platform::exit_now(code);
}

}  // namespace mp::detail
