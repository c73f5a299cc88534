// The tracker process: a table of registered objects, counted per (type, name), and the cleanup
// of what remains when the last holder of its socket is gone.
#include "tracker.hpp"

#include "platform/pipe.hpp"
#include "platform/process.hpp"

#include <csignal>
#include <map>
#include <system_error>
#include <utility>

namespace mp::detail::tracker {

namespace {
void say(const std::string& text) { platform::write_stderr("resource_tracker: " + text + "\n"); }

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 200)) out += (c >= ' ' && c <= '~') ? c : '?';
  return out;
}
}  // namespace

int server_main(native_handle_t fd) {
  // As CPython: Ctrl-C or a SIGTERM sent to the process group must not stop the tracker before
  // the processes it watches; it ends when they have all closed the socket.
  std::signal(SIGINT, SIG_IGN);
  std::signal(SIGTERM, SIG_IGN);
  platform::quiet_standard_input_output();

  std::map<std::pair<std::string, std::string>, long> registered;  // (type, name) -> count
  std::string pending;
  std::byte buf[4096];
  bool overlong = false;  // discarding the rest of a line longer than max_line
  for (;;) {
    std::size_t n = 0;
    try {
      n = platform::read_some(fd, buf);
    } catch (const std::system_error& e) {
      say(std::string("reading the socket failed: ") + e.what());
      break;
    }
    if (n == 0) break;
    pending.append(reinterpret_cast<const char*>(buf), n);
    std::size_t start = 0;
    for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(pending.data() + start, nl - start);
      if (overlong) {
        overlong = false;
        continue;
      }
      std::optional<Command> c = line.size() < max_line ? parse(line) : std::nullopt;
      if (!c) {
        say("ignored a malformed line: '" + printable(line) + "'");
        continue;
      }
      auto key = std::make_pair(c->type, c->name);
      if (c->kind == Command::reg) {
        ++registered[key];
      } else if (c->kind == Command::unreg) {
        auto it = registered.find(key);
        if (it != registered.end() && --it->second <= 0) registered.erase(it);
      }
    }
    pending.erase(0, start);
    if (pending.size() >= max_line) {
      if (!overlong) say("ignored a malformed line: '" + printable(pending) + "...'");
      overlong = true;
      pending.clear();
    }
  }

  // Every process of the tree is gone: what is still registered leaked.
  std::map<std::string, long> per_type;
  for (const auto& entry : registered) {
    ++per_type[entry.first.first];
  }
  for (const auto& [type, count] : per_type) {
    say("There appear to be " + std::to_string(count) + " leaked " + type +
        " objects to clean up at shutdown");
  }
  for (const auto& entry : registered) {
    const auto& [type, name] = entry.first;
    try {
      cleanup(type, name);
    } catch (const std::system_error& e) {
      say("'" + printable(name) + "': " + e.what());
    }
  }
  return 0;
}

}  // namespace mp::detail::tracker
