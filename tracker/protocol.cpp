// The tracker's line protocol and its table of cleanup functions.
#include "tracker.hpp"

#include "platform/semaphore.hpp"
#include "platform/shm.hpp"

namespace mp::detail::tracker {

namespace {
constexpr char hex[] = "0123456789ABCDEF";

int unhex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::optional<std::string> unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = unhex(s[i + 1]), lo = unhex(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c < '!' || c > '~') {
      return std::nullopt;  // raw spaces, control bytes, 8-bit bytes: the writer escapes them all
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool valid_type(std::string_view t) { return known_type(t); }
}  // namespace

std::string encode(const Command& c) {
  if (c.kind == Command::probe) return "PROBE\n";
  std::string line = c.kind == Command::reg ? "REGISTER " : "UNREGISTER ";
  line += c.type;
  line += ' ';
  for (char ch : c.name) {
    auto u = static_cast<unsigned char>(ch);
    if (u < '!' || u > '~' || ch == '%') {
      line += '%';
      line += hex[u >> 4];
      line += hex[u & 15];
    } else {
      line += ch;
    }
  }
  line += '\n';
  return line;
}

std::optional<Command> parse(std::string_view line) {
  if (line == "PROBE") return Command{};
  Command c;
  if (line.starts_with("REGISTER ")) {
    c.kind = Command::reg;
    line.remove_prefix(9);
  } else if (line.starts_with("UNREGISTER ")) {
    c.kind = Command::unreg;
    line.remove_prefix(11);
  } else {
    return std::nullopt;
  }
  auto space = line.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  c.type = std::string(line.substr(0, space));
  if (!valid_type(c.type)) return std::nullopt;
  auto name = unescape(line.substr(space + 1));
  if (!name || name->empty() || name->size() > max_name) return std::nullopt;
  c.name = std::move(*name);
  return c;
}

bool known_type(std::string_view type) {
  return type == "semaphore" || type == "shared_memory" || type == "noop";
}

void cleanup(const std::string& type, const std::string& name) {
  if (type == "semaphore") {
    platform::NamedSemaphore::unlink(name);
  } else if (type == "shared_memory") {
    platform::SharedMemorySegment::unlink(name);
  }
}

}  // namespace mp::detail::tracker
