// mp/logging.hpp - multiprocessing's logger: get_logger(), log_to_stderr(level).
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace mp {

// CPython's levels, including multiprocessing's SUBDEBUG and SUBWARNING.
enum class LogLevel : int {
  notset = 0, subdebug = 5, debug = 10, info = 20, subwarning = 25, warning = 30, error = 40, critical = 50
};

// Silent until a level is set and a handler is attached (log_to_stderr attaches stderr).
// Lines read "[LEVEL/ProcessName] message", as CPython's default format.
class Logger {
 public:
  void set_level(LogLevel level) noexcept;
  void set_level(int level) noexcept { set_level(static_cast<LogLevel>(level)); }
  LogLevel level() const noexcept;
  bool enabled_for(LogLevel level) const noexcept;
  void log(LogLevel level, std::string_view message);
  void subdebug(std::string_view m) { log(LogLevel::subdebug, m); }
  void debug(std::string_view m) { log(LogLevel::debug, m); }
  void info(std::string_view m) { log(LogLevel::info, m); }
  void subwarning(std::string_view m) { log(LogLevel::subwarning, m); }
  void warning(std::string_view m) { log(LogLevel::warning, m); }
  void error(std::string_view m) { log(LogLevel::error, m); }
  void critical(std::string_view m) { log(LogLevel::critical, m); }
  bool has_stderr_handler() const noexcept;
  void attach_stderr(bool on) noexcept;
};

Logger& get_logger();
// Attaches a stderr handler and sets the level (if given); children inherit both.
Logger& log_to_stderr(std::optional<LogLevel> level = {});
inline Logger& log_to_stderr(int level) { return log_to_stderr(static_cast<LogLevel>(level)); }
const char* level_name(LogLevel level) noexcept;

}  // namespace mp
