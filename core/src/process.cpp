// Process: CPython's process.py over the popen seam.
#include "process_state.hpp"
#include "tracker/tracker.hpp"

#include <mp/logging.hpp>

#include "platform/named_objects.hpp"
#include "platform/process.hpp"
#include "platform/socket.hpp"
#include "platform/wait.hpp"

#include <atomic>
#include <cstdio>
#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#define MP_HAVE_CXXABI 1
#endif
#include <iostream>
#include <ostream>
#include <sstream>
#include <thread>

namespace mp::detail {

namespace {

struct Globals {
  std::mutex mutex;  // children, counter
  std::vector<std::shared_ptr<ProcessState>> children;
  int counter = 0;
  Process* current = nullptr;
  std::unique_ptr<Process> main_process;
  std::unique_ptr<Process> self_process;  // a spawned child's own Process
  std::unique_ptr<Process> parent;  // made on first parent_process() from the three below
  std::string parent_name;
  int parent_pid = 0;
  bool has_parent = false;
  platform::UniqueHandle own_status;       // our end of the parent's sentinel pipe
  platform::UniqueHandle parent_sentinel;  // reads EOF when the parent is gone
  bool exiting = false;
  bool atexit_registered = false;
  bool in_bootstrap = false;
  std::mutex after_fork_mutex;
  std::vector<std::function<void()>> after_fork;
  std::vector<void (*)()> exit_hooks;  // run last at exit (CPython's negative-priority finalizers)
  std::vector<void (*)()> early_exit_hooks;  // run first (CPython's finalizers with a priority >= 0)
};

void atfork_prepare();
void atfork_parent();
void atfork_child();

Globals& g() {
  // Never destroyed: the exit function and at-fork handlers use it until the very end.
  static Globals* globals = [] {
    auto* p = new Globals;
    platform::register_atfork(&atfork_prepare, &atfork_parent, &atfork_child);
    return p;
  }();
  return *globals;
}

void atfork_prepare() {
  forkserver_client_lock();
  g().mutex.lock();
}
void atfork_parent() {
  g().mutex.unlock();
  forkserver_client_unlock();
}
// In any forked child (ours or a raw fork()): the parent's children and channels are not ours.
void atfork_child() {
  g_fork_generation.fetch_add(1, std::memory_order_relaxed);
  Globals& G = g();
  G.mutex.unlock();
  forkserver_client_unlock();
  forkserver_client_after_fork();
  for (auto& c : G.children) {
    if (c->popen) c->popen->forget_in_fork_child();
  }
  G.children.clear();
  G.own_status.reset();
  G.parent_sentinel.reset();
}

void cleanup_children() {
  Globals& G = g();
  std::vector<std::shared_ptr<ProcessState>> snapshot;
  {
    std::lock_guard lock(G.mutex);
    if (G.children.empty()) return;
    snapshot = G.children;
  }
  for (auto& s : snapshot) {
    bool done = false;
    {
      std::lock_guard lock(s->mutex);
      done = !s->popen || s->popen->poll().has_value();
    }
    if (done) {
      std::lock_guard lock(G.mutex);
      std::erase(G.children, s);
    }
  }
}

void untrack_child(const std::shared_ptr<ProcessState>& s) {
  Globals& G = g();
  {
    std::lock_guard lock(G.mutex);
    std::erase(G.children, s);
  }
  // The child has ended: its arguments may go now (see Process::start). Destroyed outside the
  // lock: dropping the last handle of a named object unlinks it.
  std::unique_ptr<TaskBase> done;
  {
    std::lock_guard lock(s->mutex);
    if (s->popen && s->popen->poll()) done = std::move(s->task);
  }
}

std::string join_identity(const std::vector<int>& identity) {
  std::string out;
  for (std::size_t i = 0; i < identity.size(); ++i) {
    if (i) out += ':';
    out += std::to_string(identity[i]);
  }
  return out;
}

std::string exitcode_text(int code) {
  if (code < 0) {
    std::string n = platform::signal_name(-code);
    if (!n.empty()) return "-" + n;
  }
  return std::to_string(code);
}

void report_exception(const std::string& process_name, const std::string& type, const std::string& what) {
  std::string text = "Process " + process_name + ":\n" + type;
  if (!what.empty()) text += ": " + what;
  text += '\n';
  std::cout.flush();
  std::fflush(stdout);
  platform::write_stderr(text);
}

void flush_std_streams() {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
}

void exit_function() {
  Globals& G = g();
  if (G.exiting) return;
  G.exiting = true;
  Logger& log = get_logger();
  log.info("process shutting down");
  std::vector<void (*)()> early;
  {
    std::lock_guard lock(G.mutex);
    early = G.early_exit_hooks;
  }
  for (auto* hook : early) hook();
  for (Process& p : active_children()) {
    if (p.daemon()) {
      log.info("calling terminate() for daemon " + p.name());
      p.terminate();
    }
  }
  for (Process& p : active_children()) {
    log.info("calling join() for process " + p.name());
    p.join();
  }
  std::vector<void (*)()> hooks;
  {
    std::lock_guard lock(G.mutex);
    hooks = G.exit_hooks;
  }
  for (auto* hook : hooks) hook();
  // Last, as CPython removes its temp dir after joining the children; here, not only in atexit,
  // for children, which end without it.
  platform::remove_private_temp_dir();
}



void main_exit_function() {
  try {
    exit_function();
  } catch (const std::exception& e) {
    platform::write_stderr(std::string("mp: error at exit: ") + e.what() + "\n");
  }
}

void ensure_atexit() {
  Globals& G = g();
  std::lock_guard lock(G.mutex);
  if (!G.atexit_registered) {
    G.atexit_registered = true;
    std::atexit(&main_exit_function);
  }
}

Process& init_main_process() {
  Globals& G = g();
  auto s = std::make_shared<ProcessState>();
  s->role = Role::current;
  s->name = "MainProcess";
  s->name_fixed = true;
  s->label = "_MainProcess";
  s->authkey = AuthKey::random();
  G.main_process = std::make_unique<Process>(ProcessAccess::make(std::move(s)));
  G.current = G.main_process.get();
  return *G.current;
}

std::string class_label(const Process& p, const ProcessState& s) {
  if (typeid(p) == typeid(Process)) return s.label;
  std::string full = demangle(typeid(p).name());
  auto colon = full.rfind("::");
  return colon == std::string::npos ? full : full.substr(colon + 2);
}

std::string cannot_travel(const std::string& name, const std::string& method, const std::string& why) {
  return "mp: cannot start " + name + " with the '" + method + "' start method: " + why +
         ". Use get_context(\"fork\") for such a target, or pass a plain function or captureless lambda "
         "(or a type registered with MP_TASK / MP_TASK_TYPE) and give it what it needs as arguments";
}

SpawnRequest prepare_spawn(Process& self, ProcessState& s, const std::string& method) {
  PrepData p;
  p.name = s.name;
  p.identity = s.identity;
  p.label = s.label;
  p.daemon = s.daemon.value_or(false);
  p.authkey = s.authkey;
  p.parent_pid = platform::current_pid();
  p.parent_name = current_process().name();
  Logger& log = get_logger();
  p.log_level = static_cast<int>(log.level());
  p.log_to_stderr = log.has_stderr_handler();
  p.start_method = method;
  p.executable = get_executable();
  TaskDescriptor& d = p.task;
  if (typeid(self) != typeid(Process)) {
    const TaskRegistration* reg = find_task_by_type(typeid(self));
    if (reg == nullptr) {
      throw ProcessError(cannot_travel(s.name, method,
                                       "it is a Process subclass (" + demangle(typeid(self).name()) +
                                           ") that is not registered with MP_TASK_TYPE"));
    }
    Encoder enc;
    reg->encode_object(static_cast<const Process*>(&self), enc);
    d.kind = TaskDescriptor::by_name;
    d.name = reg->name;
    d.payload = std::move(enc.bytes());
    d.handles = std::move(enc.handles());
  } else if (s.task) {
    if (auto why = s.task->describe(d)) throw ProcessError(cannot_travel(s.name, method, *why));
  }
  static const std::string self_executable = platform::executable_path();
  if (d.kind == TaskDescriptor::by_address && p.executable != self_executable) {
    throw ProcessError(cannot_travel(s.name, method,
                                     "set_executable() names another program (" + p.executable +
                                         "), where code cannot be found by address; register the target "
                                         "with MP_TASK or MP_TASK_TYPE so it is found by name"));
  }
  SpawnRequest r;
  r.handles = d.handles;
  // The tree shares one resource tracker (as CPython, started here if not yet running).
  if (platform::named_objects_persist()) {
    r.handles.push_back(tracker::handle_for_child());
    p.tracker = true;
  }
  p.tracker_pid = tracker::known_pid().value_or(-1);
  p.handle_count = static_cast<std::uint32_t>(r.handles.size());
  r.prep = codec<PrepData>::encode(p);
  return r;
}

}  // namespace

std::atomic<unsigned> g_fork_generation{0};

void register_early_exit_hook(void (*hook)()) {
  ensure_atexit();
  Globals& G = g();
  std::lock_guard lock(G.mutex);
  if (std::find(G.early_exit_hooks.begin(), G.early_exit_hooks.end(), hook) == G.early_exit_hooks.end()) {
    G.early_exit_hooks.push_back(hook);
  }
}

void register_exit_hook(void (*hook)()) {
  ensure_atexit();
  Globals& G = g();
  std::lock_guard lock(G.mutex);
  if (std::find(G.exit_hooks.begin(), G.exit_hooks.end(), hook) == G.exit_hooks.end()) G.exit_hooks.push_back(hook);
}

std::string current_process_name() {
  Globals& G = g();
  if (G.current == nullptr) return "MainProcess";
  auto& s = ProcessAccess::state(*G.current);
  if (!s) return "MainProcess";
  std::lock_guard lock(s->mutex);
  return s->name;
}

void track_child(std::shared_ptr<ProcessState> s) {
  Globals& G = g();
  std::lock_guard lock(G.mutex);
  G.children.push_back(std::move(s));
}

bool in_child_bootstrap() noexcept { return g().in_bootstrap; }

void become_current(Process& self) {
  Globals& G = g();
  ProcessAccess::state(self) = ProcessAccess::state(*G.current);
  G.current = &self;
}

int bootstrap_with_parent(Process& self, const std::string& parent_name, int parent_pid,
                          const std::function<void()>& body) {
  Globals& G = g();
  {
    std::lock_guard lock(G.mutex);
    G.counter = 0;
    G.children.clear();
    G.exiting = false;
  }
  auto& st = ProcessAccess::state(self);
  {
    std::lock_guard lock(st->mutex);
    st->role = Role::current;
    st->popen.reset();
  }
  G.current = &self;
  // The parent's Process object is made only if the child asks for it (fewer pages touched in a
  // fork child, each of which costs a copy).
  G.parent.reset();
  G.parent_name = parent_name;
  G.parent_pid = parent_pid;
  G.has_parent = true;
  G.in_bootstrap = true;

  Logger& log = get_logger();
  int code = 1;
  try {
    try {
      {
        std::lock_guard lock(G.after_fork_mutex);
        for (auto& fn : G.after_fork) fn();
      }
      log.info("child process calling self.run()");
      body();
      code = 0;
    } catch (...) {
      exit_function();
      throw;
    }
    exit_function();
  } catch (const SystemExit& e) {
    code = e.code;
  } catch (const std::exception& e) {
    report_exception(self.name(), demangle(typeid(e).name()), e.what());
    code = 1;
  } catch (...) {
#if defined(MP_HAVE_CXXABI)
    std::type_info* t = abi::__cxa_current_exception_type();
    report_exception(self.name(), t ? demangle(t->name()) : std::string("unknown exception"), "");
#else
    report_exception(self.name(), "unknown exception", "");
#endif
    code = 1;
  }
  if (log.enabled_for(LogLevel::info)) log.info("process exiting with exitcode " + std::to_string(code));
  flush_std_streams();
  return code;
}

void run_fork_child(Process& self, int parent_pid, platform::UniqueHandle status, platform::UniqueHandle control) {
  Globals& G = g();
  std::string parent_name = current_process_name();
  G.own_status = std::move(status);
  G.parent_sentinel = std::move(control);
  int code = bootstrap_with_parent(self, parent_name, parent_pid, [&self] { self.run(); });
  platform::exit_now(code);
}

// A spawned or forkserver child: become the process the parent described, then run its target.
int run_prepared(PrepData& prep, std::vector<native_handle_t> handles) {
  Globals& G = g();
  if (prep.log_to_stderr) log_to_stderr(static_cast<LogLevel>(prep.log_level));
  else get_logger().set_level(static_cast<LogLevel>(prep.log_level));
  set_start_method(prep.start_method, true);
  if (!prep.executable.empty()) set_executable(prep.executable);
  auto s = std::make_shared<ProcessState>();
  s->role = Role::current;
  s->name = prep.name;
  s->name_fixed = true;
  s->identity = prep.identity;
  s->label = prep.label;
  s->daemon = prep.daemon;
  s->authkey = prep.authkey;
  s->parent_pid = prep.parent_pid;
  s->start_method = prep.start_method;
  G.self_process = std::make_unique<Process>(ProcessAccess::make(std::move(s)));
  if (prep.tracker && !handles.empty()) {
    tracker::adopt_handle(handles.back(), prep.tracker_pid);
    handles.pop_back();
  }
  const TaskDescriptor& task = prep.task;
  return bootstrap_with_parent(*G.self_process, prep.parent_name, prep.parent_pid, [&task, &handles] {
    Decoder dec(task.payload, handles);
    run_task(task, dec);
  });
}

void run_prepared_child(platform::UniqueHandle control, platform::UniqueHandle status,
                        std::vector<platform::UniqueHandle> handles) {
  Globals& G = g();
  int code = 1;
  try {
    std::vector<std::byte> bytes = recv_frame(control.get());
    PrepData prep = codec<PrepData>::decode(bytes);
    if (prep.magic != PrepData{}.magic) throw DecodeError("mp: preparation data of another version");
    if (prep.handle_count != handles.size()) throw DecodeError("mp: the handles sent do not match the preparation data");
    G.own_status = std::move(status);
    G.parent_sentinel = std::move(control);
    // The objects decoded from the arguments (Connections, ...) take ownership of these.
    std::vector<native_handle_t> raw;
    for (auto& h : handles) raw.push_back(h.release());
    code = run_prepared(prep, std::move(raw));
  } catch (const std::exception& e) {
    platform::write_stderr(std::string("mp: child failed to bootstrap: ") + e.what() + "\n");
    code = 1;
  }
  platform::exit_now(code);
}

}  // namespace mp::detail

namespace mp {

using detail::g;
using detail::ProcessAccess;
using detail::ProcessState;
using detail::Role;

Process::Process() : Process(ProcessOptions{}) {}

Process::Process(ProcessOptions options) : state_(std::make_shared<ProcessState>()) {
  ProcessState& s = *state_;
  Process& cur = current_process();
  ProcessState& cs = *cur.state_;
  {
    auto& G = g();
    std::lock_guard lock(G.mutex);
    s.identity = cs.identity;
    s.identity.push_back(++G.counter);
  }
  {
    std::lock_guard lock(cs.mutex);
    s.authkey = cs.authkey;
    s.daemon = options.daemon ? options.daemon : cs.daemon;
  }
  s.parent_pid = platform::current_pid();
  s.context = options.context;
  if (options.context) s.label = options.context->process_label();
  if (!options.name.empty()) {
    s.name = std::move(options.name);
    s.name_fixed = true;
  }
}

Process::Process(std::shared_ptr<ProcessState> state) : state_(std::move(state)) {}
Process::Process(Process&&) noexcept = default;
Process& Process::operator=(Process&&) noexcept = default;
Process::~Process() = default;

void Process::set_target(std::unique_ptr<detail::TaskBase> task) { state_->task = std::move(task); }

ProcessState& Process::checked() const {
  if (!state_) throw ValueError("use of a moved-from Process object");
  if (state_->closed) throw ValueError("process object is closed");
  return *state_;
}

void Process::start() {
  ProcessState& s = checked();
  if (s.popen) throw AssertionError("cannot start a process twice");
  if (s.role != Role::child || s.parent_pid != platform::current_pid()) {
    throw AssertionError("can only start a process object created by current process");
  }
  if (current_process().daemon()) throw AssertionError("daemonic processes are not allowed to have children");
  detail::check_bootstrapped();
  detail::cleanup_children();
  {
    std::lock_guard lock(s.mutex);
    if (!s.name_fixed) {
      s.name = detail::class_label(*this, s) + "-" + detail::join_identity(s.identity);
      s.name_fixed = true;
    }
    if (typeid(*this) != typeid(Process)) s.label = detail::class_label(*this, s);
  }
  std::string method = detail::resolve_start_method(s.context);
  s.start_method = method;
  detail::ensure_atexit();
  std::unique_ptr<detail::Popen> popen;
  if (method == "fork") {
    popen = detail::launch_fork(*this);
  } else {
    detail::SpawnRequest request = detail::prepare_spawn(*this, s, method);
    popen = method == "spawn" ? detail::launch_spawn(request) : detail::launch_forkserver(request);
  }
  int pid = popen->pid();
  {
    std::lock_guard lock(s.mutex);
    s.popen = std::move(popen);
    // Unlike CPython (which drops _target/_args here), keep the arguments until the child has
    // ended: a spawn or forkserver child opens the named objects they carry while it boots, and a
    // fork child uses the parent's shared-heap blocks - neither may vanish because the caller
    // dropped its own handles right after start(). (Released when the child is joined or reaped.)
  }
  detail::track_child(state_);
  if (Logger& log = get_logger(); log.enabled_for(LogLevel::debug)) {
    log.debug("started " + s.name + " (pid " + std::to_string(pid) + ") by " + method);
  }
}

void Process::run() {
  if (state_ && state_->task) state_->task->run();
}

bool Process::join(Timeout timeout) {
  ProcessState& s = checked();
  if (s.role == Role::parent) {
    native_handle_t h = s.parent_sentinel;
    return !platform::wait_ready(std::span<const native_handle_t>(&h, 1), timeout).empty();
  }
  if (s.role == Role::current || s.parent_pid != platform::current_pid()) {
    throw AssertionError("can only join a child process");
  }
  std::shared_ptr<detail::Popen> popen;
  {
    std::lock_guard lock(s.mutex);
    popen = s.popen;
  }
  if (popen == nullptr) throw AssertionError("can only join a started process");
  auto code = popen->wait(timeout);
  if (code) {
    detail::untrack_child(state_);
    if (Logger& log = get_logger(); log.enabled_for(LogLevel::subdebug)) {
      log.subdebug("joined " + s.name + " with exitcode " + std::to_string(*code));
    }
  }
  return code.has_value();
}

bool Process::is_alive() {
  ProcessState& s = checked();
  if (s.role == Role::current) return true;
  if (s.role == Role::parent) return !platform::is_ready(s.parent_sentinel);
  if (s.parent_pid != platform::current_pid()) throw AssertionError("can only test a child process");
  std::unique_lock lock(s.mutex);
  if (!s.popen) return false;
  if (s.popen->poll()) {
    lock.unlock();
    detail::untrack_child(state_);
    return false;
  }
  return true;
}

void Process::terminate() {
  ProcessState& s = checked();
  std::lock_guard lock(s.mutex);
  if (!s.popen) throw AssertionError("can only terminate a started process");
  s.popen->terminate();
}

void Process::kill() {
  ProcessState& s = checked();
  std::lock_guard lock(s.mutex);
  if (!s.popen) throw AssertionError("can only kill a started process");
  s.popen->kill();
}

void Process::close() {
  if (!state_ || state_->closed) return;
  ProcessState& s = *state_;
  {
    std::lock_guard lock(s.mutex);
    if (s.popen) {
      if (!s.popen->poll()) {
        throw ValueError("Cannot close a process while it is still running. You should first call join() or terminate().");
      }
      s.popen->close();
      s.popen.reset();
    }
    s.closed = true;
    s.task.reset();
  }
  detail::untrack_child(state_);
}

std::string Process::name() const {
  if (!state_) throw ValueError("use of a moved-from Process object");
  std::lock_guard lock(state_->mutex);
  if (state_->name_fixed) return state_->name;
  return detail::class_label(*this, *state_) + "-" + detail::join_identity(state_->identity);
}

void Process::name(std::string name) {
  if (!state_) throw ValueError("use of a moved-from Process object");
  std::lock_guard lock(state_->mutex);
  state_->name = std::move(name);
  state_->name_fixed = true;
}

bool Process::daemon() const {
  if (!state_) throw ValueError("use of a moved-from Process object");
  std::lock_guard lock(state_->mutex);
  return state_->daemon.value_or(false);
}

void Process::daemon(bool daemonic) {
  ProcessState& s = checked();
  std::lock_guard lock(s.mutex);
  if (s.popen) throw AssertionError("process has already started");
  s.daemon = daemonic;
}

std::optional<int> Process::pid() const {
  ProcessState& s = checked();
  if (s.role == Role::current) return platform::current_pid();
  if (s.role == Role::parent) return s.pid;
  std::lock_guard lock(s.mutex);
  if (!s.popen) return std::nullopt;
  return s.popen->pid();
}

std::optional<int> Process::exitcode() {
  ProcessState& s = checked();
  std::lock_guard lock(s.mutex);
  if (!s.popen) return std::nullopt;
  return s.popen->poll();
}

const AuthKey& Process::authkey() const {
  if (!state_) throw ValueError("use of a moved-from Process object");
  return state_->authkey;
}

void Process::authkey(AuthKey key) {
  if (!state_) throw ValueError("use of a moved-from Process object");
  std::lock_guard lock(state_->mutex);
  state_->authkey = std::move(key);
}

Sentinel Process::sentinel() const {
  ProcessState& s = checked();
  if (s.role == Role::parent) return Sentinel{s.parent_sentinel};
  std::lock_guard lock(s.mutex);
  if (!s.popen) throw ValueError("process not started");
  return Sentinel{s.popen->sentinel()};
}

std::string Process::start_method() const {
  ProcessState& s = checked();
  if (!s.start_method.empty()) return s.start_method;
  return detail::resolve_start_method(s.context);
}

std::ostream& operator<<(std::ostream& os, const Process& p) {
  if (!p.state_) return os << "<Process moved-from>";
  ProcessState& s = *p.state_;
  std::optional<int> exitcode;
  std::string status;
  std::optional<int> pid;
  {
    std::lock_guard lock(s.mutex);
    if (s.role == Role::current) {
      status = "started";
    } else if (s.closed) {
      status = "closed";
    } else if (s.role == Role::parent || s.parent_pid != platform::current_pid()) {
      status = "unknown";
    } else if (!s.popen) {
      status = "initial";
    } else {
      exitcode = s.popen->poll();
      status = exitcode ? "stopped" : "started";
    }
    if (s.popen) pid = s.popen->pid();
  }
  std::ostringstream out;
  out << '<' << detail::class_label(p, s) << " name='" << p.name() << '\'';
  if (pid) out << " pid=" << *pid;
  if (s.parent_pid) out << " parent=" << *s.parent_pid;
  else out << " parent=None";
  out << ' ' << status;
  if (exitcode) out << " exitcode=" << detail::exitcode_text(*exitcode);
  if (s.daemon.value_or(false)) out << " daemon";
  out << '>';
  return os << out.str();
}

Process& current_process() {
  auto& G = g();
  // The main process's object is made on first use, once, whichever thread gets here first. (A
  // child's bootstrap replaces it before any thread of the child exists.)
  static std::once_flag made;
  std::call_once(made, [&G] {
    if (G.current == nullptr) detail::init_main_process();
  });
  return *G.current;
}

Process* parent_process() {
  current_process();
  auto& G = g();
  static std::mutex making;
  std::lock_guard lock(making);
  if (!G.parent && G.has_parent) {
    auto ps = std::make_shared<ProcessState>();
    ps->role = Role::parent;
    ps->name = G.parent_name;
    ps->name_fixed = true;
    ps->label = "_ParentProcess";
    ps->pid = G.parent_pid;
    ps->parent_sentinel = G.parent_sentinel.get();
    G.parent = std::make_unique<Process>(ProcessAccess::make(std::move(ps)));
  }
  return G.parent.get();
}

std::vector<Process> active_children() {
  detail::cleanup_children();
  auto& G = g();
  std::lock_guard lock(G.mutex);
  std::vector<Process> out;
  out.reserve(G.children.size());
  for (auto& s : G.children) out.push_back(ProcessAccess::make(s));
  return out;
}

int cpu_count() { return platform::cpu_count(); }
int process_cpu_count() { return platform::process_cpu_count(); }

void register_after_fork(std::function<void()> fn) {
  auto& G = g();
  std::lock_guard lock(G.after_fork_mutex);
  G.after_fork.push_back(std::move(fn));
}

void sys_exit(int code) {
  if (detail::in_child_bootstrap()) throw SystemExit{code};
  std::exit(code);
}

}  // namespace mp
