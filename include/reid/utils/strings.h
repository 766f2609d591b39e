#pragma once
/// @file
/// Small string helpers shared by the config system, registries and tools.

#include <cstdint>
#include <string>
#include <vector>

namespace reid::utils {

/// Levenshtein edit distance between two strings.
std::size_t edit_distance(const std::string& a, const std::string& b);

/// The candidate closest to `name` by edit distance, or "" when none is close enough to be a
/// plausible typo (distance greater than max(2, |name| / 3)).
std::string closest_match(const std::string& name, const std::vector<std::string>& candidates);

/// `items` joined with `separator`.
std::string join(const std::vector<std::string>& items, const std::string& separator = ", ");

/// `text` split at every occurrence of `separator` (empty fields kept).
std::vector<std::string> split(const std::string& text, char separator);

/// `text` without leading and trailing white space.
std::string trim(const std::string& text);

/// True when `text` starts with `prefix`.
bool starts_with(const std::string& text, const std::string& prefix);

/// True when `text` ends with `suffix`.
bool ends_with(const std::string& text, const std::string& suffix);

/// A byte count as a human-readable string ("1.5 GiB").
std::string format_bytes(std::uint64_t bytes);

/// A duration in seconds as "1h02m03s" / "2m05s" / "4.2s".
std::string format_duration(double seconds);

}  // namespace reid::utils
