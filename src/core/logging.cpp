#include "reid/core/logging.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>

#include "reid/core/error.h"

namespace reid {
namespace {

// The sinks, shared by every thread; one mutex keeps lines whole.
struct Sinks {
  std::mutex mutex;
  std::FILE* file = nullptr;
  std::string prefix;
  bool color = false;
};

Sinks& sinks() {
  static Sinks instance;
  static const bool colored = [] {
    const char* term = std::getenv("TERM");
    instance.color = isatty(fileno(stderr)) && term && std::string(term) != "dumb";
    return instance.color;
  }();
  (void)colored;
  return instance;
}

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warning";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: break;
  }
  return "off";
}

const char* level_color(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "\033[36m";
    case LogLevel::kInfo: return "\033[32m";
    case LogLevel::kWarn: return "\033[33m\033[1m";
    default: return "\033[31m\033[1m";
  }
}

// "HH:MM:SS" for the console, "YYYY-mm-dd HH:MM:SS.mmm" for the file.
std::string timestamp(bool long_form) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  std::tm local{};
  localtime_r(&seconds, &local);
  char text[32];
  std::strftime(text, sizeof(text), long_form ? "%Y-%m-%d %H:%M:%S" : "%H:%M:%S", &local);
  if (!long_form) return text;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  return fmt::format("{}.{:03d}", text, static_cast<int>(ms));
}

void write_file_line(std::FILE* file, LogLevel level, std::string_view message) {
  fmt::print(file, "[{}] {} {}\n", timestamp(true), level_name(level), message);
  std::fflush(file);
}

}  // namespace

void Logger::log(LogLevel level, std::string_view message) {
  if (!enabled(level) || level == LogLevel::kOff) return;
  auto& s = sinks();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.color)
    fmt::print(stderr, "[{}] {}{}{}\033[0m {}\n", timestamp(false), s.prefix, level_color(level), level_name(level),
               message);
  else
    fmt::print(stderr, "[{}] {}{} {}\n", timestamp(false), s.prefix, level_name(level), message);
  std::fflush(stderr);
  if (s.file) write_file_line(s.file, level, message);
}

void Logger::set_level(LogLevel level) { level_.store(level, std::memory_order_relaxed); }

LogLevel Logger::level() const { return level_.load(std::memory_order_relaxed); }

void Logger::set_console_prefix(std::string prefix) {
  auto& s = sinks();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.prefix = std::move(prefix);
}

Logger& logger() {
  static Logger instance;
  return instance;
}

void setup_logging(const std::string& log_file, bool verbose) {
  std::FILE* file = nullptr;
  if (!log_file.empty()) {
    std::error_code ec;
    const auto parent = std::filesystem::path(log_file).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) throw IOError(parent.string(), "cannot create the output folder: " + ec.message());
    file = std::fopen(log_file.c_str(), "a");
    if (!file) throw IOError(log_file, std::string("cannot open the log file (") + std::strerror(errno) + ")");
  }
  auto& s = sinks();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.file) std::fclose(s.file);
    s.file = file;
    s.prefix.clear();
  }
  logger().set_level(verbose ? LogLevel::kDebug : LogLevel::kInfo);
}

void log_error_to_file(const std::string& message) {
  auto& s = sinks();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.file) write_file_line(s.file, LogLevel::kError, message);
}

}  // namespace reid
