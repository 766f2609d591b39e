#pragma once
/// @file
/// The one logger. Library code logs through reid::logger(); only executables call
/// setup_logging() to decide where the messages go.

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

namespace reid {

/// The LibReID logger (name "reid"). Before setup_logging() it writes to stderr at info level.
spdlog::logger& logger();

/// Sends log messages to the console and, when `log_file` is not empty, to that file (appended,
/// so a resumed run keeps its history). `verbose` lowers the level to debug.
/// Throws reid::IOError when the log file cannot be opened.
void setup_logging(const std::string& log_file, bool verbose);

/// Writes an error line to the log file only (not the console), when setup_logging() opened
/// one: executables report their fatal error on stderr once and keep it in the log too.
void log_error_to_file(const std::string& message);

}  // namespace reid
