#pragma once
/// @file
/// The one logger. Library code logs through reid::logger(); only executables call
/// setup_logging() to decide where the messages go.
///
/// Messages are formatted with {fmt} (`logger().info("epoch {} of {}", e, n)`), the copy that
/// LibTorch ships in its include folder, used header-only: LibReID adds no formatting library of
/// its own, so it can never meet a second {fmt} of another version in one program.

#include <atomic>
#include <string>
#include <string_view>
#include <utility>

#ifndef FMT_HEADER_ONLY
#define FMT_HEADER_ONLY 1
#endif
#include <fmt/format.h>

namespace reid {

/// Severity of a log message, lowest first.
enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

/// A thread-safe logger writing to the console (stderr) and, once setup_logging() opened one, a
/// file. Console lines read `[HH:MM:SS] <prefix><level> <message>`, file lines carry the date
/// and milliseconds. Every message at info level or above is flushed at once, so a crash loses
/// nothing that was logged.
class Logger {
 public:
  template <typename... Args>
  void debug(fmt::format_string<Args...> format, Args&&... args) {
    write_formatted(LogLevel::kDebug, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void info(fmt::format_string<Args...> format, Args&&... args) {
    write_formatted(LogLevel::kInfo, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void warn(fmt::format_string<Args...> format, Args&&... args) {
    write_formatted(LogLevel::kWarn, format, std::forward<Args>(args)...);
  }
  template <typename... Args>
  void error(fmt::format_string<Args...> format, Args&&... args) {
    write_formatted(LogLevel::kError, format, std::forward<Args>(args)...);
  }

  /// Writes an already formatted message at `level`.
  void log(LogLevel level, std::string_view message);
  /// Messages below `level` are dropped.
  void set_level(LogLevel level);
  LogLevel level() const;
  bool enabled(LogLevel level) const { return level >= level_.load(std::memory_order_relaxed); }
  /// Text put before the level on console lines (e.g. "[rank 1] " in a multi-process job).
  void set_console_prefix(std::string prefix);

 private:
  template <typename... Args>
  void write_formatted(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
    if (enabled(level)) log(level, fmt::format(format, std::forward<Args>(args)...));
  }

  std::atomic<LogLevel> level_{LogLevel::kInfo};
};

/// The LibReID logger. Before setup_logging() it writes to stderr at info level.
Logger& logger();

/// Sends log messages to the console and, when `log_file` is not empty, to that file (appended,
/// so a resumed run keeps its history). `verbose` lowers the level to debug. Replaces any file
/// opened before. Throws reid::IOError when the log file cannot be opened.
void setup_logging(const std::string& log_file, bool verbose);

/// Writes an error line to the log file only (not the console), when setup_logging() opened
/// one: executables report their fatal error on stderr once and keep it in the log too.
void log_error_to_file(const std::string& message);

}  // namespace reid
