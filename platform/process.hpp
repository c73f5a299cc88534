// platform/process.hpp - process creation, reaping, signals and facts about this process.
#pragma once
#include "platform/unique_handle.hpp"
#include <optional>
#include <string>
#include <vector>

namespace mp::platform {

int current_pid() noexcept;
int parent_pid() noexcept;

// fork(): 0 in the child, the pid in the parent.
int fork_process();

// Starts `executable` with `args` (args[0] included). `inherit[i]` becomes handle number
// first_inherited_handle + i in the child; nothing else is inherited (stdin/out/err excepted).
// `process_handle`, when given, receives a handle to the child where the OS has one (Windows:
// the process HANDLE, the child's sentinel; Linux: a pidfd; else left empty).
inline constexpr int first_inherited_handle = 3;
int spawn_process(const std::string& executable, const std::vector<std::string>& args,
                  const std::vector<native_handle>& inherit, UniqueHandle* process_handle = nullptr);
// In a child started by spawn_process: the handle the parent passed as inherit[index], made
// non-inheritable (POSIX: number first_inherited_handle + index; Windows: the value the parent
// wrote on the command line).
UniqueHandle inherited_handle(std::size_t index);

// A handle that becomes ready exactly when process `pid` has ended (Linux pidfd), or an invalid
// handle where the OS has none.
UniqueHandle open_process_handle(int pid);

// Reaps a child of ours. Exit code in CPython's convention (N, or -signal); nullopt while running
// (when !block). A child already reaped elsewhere reads as 255.
std::optional<int> reap(int pid, bool block);
// Reaps any finished child; returns {pid, exit code}, or nullopt if none has finished.
std::optional<std::pair<int, int>> reap_any();

// Whether process `pid` exists and has not ended: false for no such process and for one that has
// ended but is not yet reaped (a zombie) - any zombie where the OS says (/proc), else only a
// child of ours. Any process, not only children of ours; one of another user counts as existing.
bool process_exists(int pid) noexcept;

// Sends a signal; a process that is already gone is not an error.
void send_signal(int pid, int signal);
extern const int signal_term;
extern const int signal_kill;
// "SIGTERM" for 15, or "" if unknown.
std::string signal_name(int signal);

// Points standard input and output at the null device (a background helper process that must
// not hold a terminal's or a parent's pipes open); standard error stays.
void quiet_standard_input_output() noexcept;

[[noreturn]] void exit_now(int code) noexcept;
// Writes straight to the standard error handle (safe after fork, no locks).
void write_stderr(const std::string& text) noexcept;

std::string executable_path();
std::vector<std::string> process_arguments();
int cpu_count();
int process_cpu_count();

// Runs `prepare` before a fork in the forking process, `parent` after it there, `child` in the child.
void register_atfork(void (*prepare)(), void (*parent)(), void (*child)());

// A pipe that becomes readable when a child of ours exits (a SIGCHLD self-pipe), for servers.
class ChildExitNotifier {
 public:
  ChildExitNotifier();
  ~ChildExitNotifier();
  native_handle handle() const noexcept;
  void drain() noexcept;
  // In a forked child: restore default signal dispositions and drop the pipe.
  void reset_in_child() noexcept;
};
// Turns a polite termination request (SIGTERM; what Process::terminate() sends) into a call of
// `fn` on a thread of its own, which should end the process. Call it before starting threads.
void on_termination_request(void (*fn)());

// Ignore SIGPIPE in this process (servers write to peers that may be gone).
void ignore_broken_pipes() noexcept;

}  // namespace mp::platform
