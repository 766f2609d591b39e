#pragma once
/// @file
/// Loading configs: YAML file -> recursive `_base_` (deep merge, paths relative to the including
/// file) -> `--set a.b.c=value` overrides (values parsed as YAML) -> strict decode (an unknown
/// key names its dotted path and the nearest valid key; a wrong type names the expected type)
/// -> Config::validate().

#include <string>
#include <vector>

#include "reid/config/config.h"

namespace reid::config {

/// Loads `path` (empty: the built-in defaults), applies `overrides` ("a.b.c=value", in order),
/// decodes and validates. Throws reid::ConfigError or reid::IOError naming the key or file.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

/// Like load_config() for YAML text; `_base_` paths are relative to `base_dir`.
Config parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides = {},
                    const std::string& base_dir = ".");

/// The config as YAML, keys in declaration order; parse_config(to_yaml(c)) == c.
std::string to_yaml(const Config& config);

/// Writes to_yaml(config) to `path` through a temporary file and a rename. Throws IOError.
void save_config(const Config& config, const std::string& path);

/// One configuration key, for documentation and suggestions.
struct KeyInfo {
  /// Dotted path, e.g. "solver.base_lr".
  std::string path;
  /// Type name: boolean, integer, number, string, list of integers, ...
  std::string type;
  /// Default value as flow-style YAML.
  std::string default_value;
};

/// Every leaf key of Config with its type and default, in declaration order.
std::vector<KeyInfo> list_keys();

/// A key whose value differs between two configs (values as flow YAML).
struct KeyDifference {
  std::string path;
  std::string before;
  std::string after;
};

/// Every key whose value differs between `a` and `b`, in key-table order.
std::vector<KeyDifference> diff_configs(const Config& a, const Config& b);

}  // namespace reid::config
