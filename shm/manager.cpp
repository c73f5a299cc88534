// SharedMemoryManager: CPython's managers.SharedMemoryManager, as a small server process that
// records segment names and unlinks them at shutdown - or when its parent dies.
#include <mp/context.hpp>
#include <mp/process.hpp>
#include <mp/shared_memory.hpp>

#include "platform/process.hpp"
#include "platform/shm.hpp"

#include <algorithm>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>

namespace mp::detail {

namespace {

struct Registry {
  std::mutex mutex;
  std::set<std::string> names;

  void unlink_all() {
    std::lock_guard g(mutex);
    for (const auto& n : names) {
      try {
        mp::SharedMemory(n).unlink();  // also tells the tracker it is gone
      } catch (const std::exception&) {
        // Already removed by a user's unlink(): fine.
      }
    }
    names.clear();
  }
};

using Request = std::pair<std::string, std::string>;

}  // namespace

// The server's target (a plain function: it travels under every start method).
void shared_memory_manager_server(Connection to_parent, AuthKey authkey) {
  static Registry registry;  // reached by the watchdog threads after this frame is gone
  Listener listener(std::nullopt, authkey, 16);
  // The parent terminates its daemon children at exit: that is a shutdown too.
  platform::on_termination_request([] {
    registry.unlink_all();
    std::_Exit(0);
  });
  to_parent.send(listener.address());
  to_parent.close();
  // A parent that dies without shutdown(): clean up all the same.
  std::thread([] {
    if (Process* parent = parent_process()) parent->join();
    registry.unlink_all();
    std::_Exit(0);
  }).detach();
  for (;;) {
    Connection c;
    try {
      c = listener.accept();
    } catch (const std::exception&) {
      continue;  // a client that failed authentication, or went away mid-handshake
    }
    try {
      auto [op, arg] = c.recv<Request>();
      if (op == "track") {
        std::lock_guard g(registry.mutex);
        registry.names.insert(arg);
        c.send(std::vector<std::string>{});
      } else if (op == "list") {
        std::lock_guard g(registry.mutex);
        c.send(std::vector<std::string>(registry.names.begin(), registry.names.end()));
      } else if (op == "shutdown") {
        registry.unlink_all();
        c.send(std::vector<std::string>{});
        return;
      } else {
        c.send(std::vector<std::string>{"error: unknown request " + op});
      }
    } catch (const std::exception&) {
      // A broken client: the next one.
    }
  }
}

}  // namespace mp::detail

namespace mp::detail {

struct ManagerState {
  Context* ctx = nullptr;
  std::unique_ptr<Process> server;  // in the process that started it
  Address address;
  AuthKey authkey;
  bool connected = false;

  template <class R>
  R request(const std::string& op, const std::string& arg) {
    if (!connected) throw ProcessError("SharedMemoryManager: the manager is not running (start() it first)");
    Connection c = Client(address, authkey);
    c.send(std::make_pair(op, arg));
    return c.recv<R>();
  }

  void shutdown() {
    if (!server) {
      connected = false;  // a copy in a child: it does not own the server
      return;
    }
    if (connected) {
      try {
        request<std::vector<std::string>>("shutdown", "");
      } catch (const std::exception&) {
        // The server is gone already.
      }
    }
    connected = false;
    if (!server->join(Seconds(10))) {
      server->kill();
      server->join(Seconds(10));
    }
    server.reset();
  }

  ~ManagerState() {
    try {
      shutdown();
    } catch (...) {
      // A destructor does not throw; the server cleans up when this process ends anyway.
    }
  }
};

}  // namespace mp::detail

namespace mp {

SharedMemoryManager::SharedMemoryManager(Context* ctx) : state_(std::make_shared<detail::ManagerState>()) {
  state_->ctx = ctx;
}

void SharedMemoryManager::start() {
  auto& s = *state_;
  if (s.server || s.connected) throw ProcessError("Already started server");
  Context& ctx = s.ctx != nullptr ? *s.ctx : get_context();
  s.authkey = AuthKey::random();
  auto [mine, theirs] = Pipe(false);
  s.server = std::make_unique<Process>(ctx.Process(detail::shared_memory_manager_server, theirs, s.authkey));
  s.server->daemon(true);
  s.server->start();
  theirs.close();
  if (!mine.poll(Seconds(60))) {
    s.server->kill();
    s.server.reset();
    throw ProcessError("SharedMemoryManager: the server did not start");
  }
  s.address = mine.recv<Address>();
  s.connected = true;
}

bool SharedMemoryManager::running() const { return state_->connected; }
void SharedMemoryManager::shutdown() { state_->shutdown(); }

mp::SharedMemory SharedMemoryManager::SharedMemory(std::size_t size) {
  if (!state_->connected) throw ProcessError("SharedMemoryManager: the manager is not running (start() it first)");
  // The manager owns the segment (it unlinks it at shutdown or when its owner dies): the resource
  // tracker is not told, or a creating child's own tracker would remove it when that child ends.
  mp::SharedMemory shm(std::nullopt, true, size, false);
  try {
    state_->request<std::vector<std::string>>("track", shm.name());
  } catch (...) {
    shm.unlink();
    throw;
  }
  return shm;
}

mp::ShareableList SharedMemoryManager::ShareableList(const std::vector<mp::ShareableList::Item>& items) {
  if (!state_->connected) throw ProcessError("SharedMemoryManager: the manager is not running (start() it first)");
  mp::ShareableList sl(items, std::nullopt, false);
  try {
    state_->request<std::vector<std::string>>("track", sl.shm().name());
  } catch (...) {
    sl.shm().unlink();
    throw;
  }
  return sl;
}

std::vector<std::string> SharedMemoryManager::list_segments() {
  return state_->request<std::vector<std::string>>("list", "");
}

const Address& SharedMemoryManager::address() const { return state_->address; }

void SharedMemoryManager::save(detail::Encoder& enc) const {
  if (!state_->connected) throw ProcessError("SharedMemoryManager: only a running manager can be sent");
  enc(state_->address, state_->authkey);
}

void SharedMemoryManager::load(detail::Decoder& dec) {
  state_ = std::make_shared<detail::ManagerState>();
  dec(state_->address, state_->authkey);
  state_->connected = true;
}

}  // namespace mp
