#pragma once
/// @file
/// Writing files so that a crash or a full disk never leaves a torn file behind: the content goes
/// to `<path>.tmp` first and is renamed over `path` only once it is complete.

#include <functional>
#include <string>
#include <string_view>

namespace reid::utils {

/// Creates the parent folders of `path`, calls `write(temporary)` to produce the complete file at
/// `temporary` (a sibling of `path`), then renames it onto `path`. `what` names the file in errors
/// ("the checkpoint"). Throws IOError naming the path when the folder, the write or the rename
/// fails; the previous content of `path`, if any, is kept in that case.
void write_atomically(const std::string& path, const std::string& what,
                      const std::function<void(const std::string& temporary)>& write);

/// Writes `bytes` to `path` (created or truncated) and flushes them to the disk. Throws IOError
/// naming the path and the system's reason (no space left, file too large, ...).
/// `name` (default: `path`) is the file named in errors (the final name of a temporary).
void write_file(const std::string& path, std::string_view bytes, const std::string& what, const std::string& name = "");

/// Appends `bytes` to `path` (created if missing) whole or not at all: on a failure what was
/// written is cut back, and IOError names the path and the system's reason.
void append_file(const std::string& path, std::string_view bytes, const std::string& what);

/// `write_atomically` for a byte string already in memory.
void write_file_atomically(const std::string& path, std::string_view bytes, const std::string& what);

}  // namespace reid::utils
