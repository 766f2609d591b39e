#pragma once
/// @file
/// Error types for user-facing problems. Tensor and argument preconditions use TORCH_CHECK;
/// these carry the configuration key or file path the user has to fix.

#include <stdexcept>
#include <string>

namespace reid {

/// Base class of every error LibReID raises for a problem the user can fix.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A configuration problem. `key()` is the dotted key path (e.g. `solver.base_lr`), or the
/// file being read when the problem is the file itself.
class ConfigError : public Error {
 public:
  ConfigError(std::string key, const std::string& message)
      : Error(key.empty() ? message : key + ": " + message), key_(std::move(key)) {}
  /// The dotted key path (or file) the error is about.
  const std::string& key() const noexcept { return key_; }

 private:
  std::string key_;
};

/// A problem reading or writing a file or directory. `path()` names it.
class IOError : public Error {
 public:
  IOError(std::string path, const std::string& message)
      : Error(path.empty() ? message : path + ": " + message), path_(std::move(path)) {}
  /// The file or directory the error is about.
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

}  // namespace reid
