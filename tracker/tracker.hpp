// tracker/tracker.hpp - the resource tracker's internals: wire protocol, cleanup table, and the
// hooks the start methods use to hand the tracker's socket to children.
#pragma once
#include "platform/native.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace mp::detail::tracker {

// ---- protocol: one line per command, at most max_line bytes (one send, arrives whole) ----------------
//   REGISTER <type> <name>\n   UNREGISTER <type> <name>\n   PROBE\n
// <name> is percent-escaped: every byte outside '!'..'~', and '%' itself, becomes %XX.
inline constexpr std::size_t max_line = 512;
inline constexpr std::size_t max_name = 255;

struct Command {
  enum Kind { probe, reg, unreg } kind = probe;
  std::string type;
  std::string name;
};

std::string encode(const Command& c);
// The command of one line (without its '\n'); nullopt if malformed (also an unknown type).
std::optional<Command> parse(std::string_view line);

// ---- cleanup table -------------------------------------------------------------------------
bool known_type(std::string_view type);
// Removes the object; throws std::system_error when the OS refuses.
void cleanup(const std::string& type, const std::string& name);

// ---- server -----------------------------------------------------------------------------------
// The tracker process: reads commands from `fd` until every writer is gone, then cleans up.
int server_main(native_handle_t fd);
inline constexpr const char* flag = "--mp-tracker";

// ---- client hooks for the start methods ----------------------------------------------------------
// The tracker's pipe end for a spawn / forkserver child (starting the tracker if needed).
native_handle_t handle_for_child();
// In a spawn / forkserver child: the pipe end the parent passed (takes ownership).
void adopt_handle(native_handle_t h, int tracker_pid);
// What a child is told, beside the handle.
std::optional<int> known_pid();

}  // namespace mp::detail::tracker
