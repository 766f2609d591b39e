#include "reid/core/logging.h"

#include <filesystem>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include "reid/core/error.h"

namespace reid {
namespace {

std::shared_ptr<spdlog::sinks::basic_file_sink_mt>& file_sink_slot() {
  static std::shared_ptr<spdlog::sinks::basic_file_sink_mt> sink;
  return sink;
}

std::shared_ptr<spdlog::logger>& logger_slot() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto log = std::make_shared<spdlog::logger>("reid", sink);
    log->set_pattern("[%H:%M:%S] %^%l%$ %v");
    log->set_level(spdlog::level::info);
    return log;
  }();
  return instance;
}

}  // namespace

spdlog::logger& logger() { return *logger_slot(); }

void setup_logging(const std::string& log_file, bool verbose) {
  std::vector<spdlog::sink_ptr> sinks;
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_pattern("[%H:%M:%S] %^%l%$ %v");
  sinks.push_back(console);
  if (!log_file.empty()) {
    std::error_code ec;
    const auto parent = std::filesystem::path(log_file).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) throw IOError(parent.string(), "cannot create the output folder: " + ec.message());
    try {
      auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(log_file, /*truncate=*/false);
      file->set_pattern("[%Y-%m-%d %H:%M:%S.%e] %l %v");
      sinks.push_back(file);
      file_sink_slot() = file;
    } catch (const spdlog::spdlog_ex& e) {
      throw IOError(log_file, std::string("cannot open the log file (") + e.what() + ")");
    }
  }
  auto log = std::make_shared<spdlog::logger>("reid", sinks.begin(), sinks.end());
  log->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  log->flush_on(spdlog::level::info);
  logger_slot() = log;
}

void log_error_to_file(const std::string& message) {
  const auto& sink = file_sink_slot();
  if (!sink) return;
  spdlog::logger file_only("reid", sink);
  file_only.error("{}", message);
  file_only.flush();
}

}  // namespace reid
