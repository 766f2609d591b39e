#pragma once
// Helpers shared by the dataset parsers (datasets.cpp, video_datasets.cpp); private.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace reid::data::detail {

/// .jpg, .jpeg, .png or .bmp (any case).
bool is_image_file(const std::filesystem::path& path);

/// The images of `dir` (not recursive) in sorted order, so that parsing is deterministic.
std::vector<std::filesystem::path> sorted_images(const std::filesystem::path& dir);

/// The first candidate folder holding every `required` entry, or an IOError naming the first
/// missing entry and the expected `layout`.
std::filesystem::path find_dataset_dir(const std::string& dataset, const std::vector<std::filesystem::path>& candidates,
                                       const std::vector<std::string>& required, const std::string& layout);

/// Calls `parse(line, where)` for every non-blank line of `list`, trimmed, with the text after
/// '#' dropped when `comments`; `where` is "<list>:<line number>" for error messages.
void for_each_list_line(const std::string& list, const std::string& what, bool comments,
                        const std::function<void(const std::string&, const std::string&)>& parse);

/// Splits `line` into a leading part (which may hold spaces: a path) and its last `count`
/// white-space separated fields; false when the line has fewer than count + 1 fields.
bool split_last_fields(const std::string& line, std::size_t count, std::string& head, std::vector<std::string>& fields);

/// `text` as a whole integer.
bool parse_integer(const std::string& text, int64_t& value);

}  // namespace reid::data::detail
