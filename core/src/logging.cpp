#include <mp/logging.hpp>

#include "process_state.hpp"
#include "platform/process.hpp"

#include <atomic>

namespace mp {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::notset)};
std::atomic<bool> g_stderr{false};
}  // namespace

const char* level_name(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::subdebug: return "SUBDEBUG";
    case LogLevel::debug: return "DEBUG";
    case LogLevel::info: return "INFO";
    case LogLevel::subwarning: return "SUBWARNING";
    case LogLevel::warning: return "WARNING";
    case LogLevel::error: return "ERROR";
    case LogLevel::critical: return "CRITICAL";
    default: return "NOTSET";
  }
}

void Logger::set_level(LogLevel level) noexcept { g_level = static_cast<int>(level); }
LogLevel Logger::level() const noexcept { return static_cast<LogLevel>(g_level.load()); }
bool Logger::has_stderr_handler() const noexcept { return g_stderr; }
void Logger::attach_stderr(bool on) noexcept { g_stderr = on; }

bool Logger::enabled_for(LogLevel level) const noexcept {
  // Python's logging: an unset level means WARNING (the root logger's), and without a handler
  // nothing is written.
  int l = g_level.load();
  int effective = l == 0 ? static_cast<int>(LogLevel::warning) : l;
  return g_stderr && static_cast<int>(level) >= effective;
}

void Logger::log(LogLevel level, std::string_view message) {
  if (!enabled_for(level)) return;
  std::string line = "[";
  line += level_name(level);
  line += '/';
  line += detail::current_process_name();
  line += "] ";
  line += message;
  line += '\n';
  platform::write_stderr(line);  // one write: lines of several processes do not interleave
}

Logger& get_logger() {
  static Logger logger;
  return logger;
}

Logger& log_to_stderr(std::optional<LogLevel> level) {
  Logger& l = get_logger();
  l.attach_stderr(true);
  if (level) l.set_level(*level);
  return l;
}

}  // namespace mp
