#pragma once
/// @file
/// Image decoding with errors that name the file.

#include <string>

#include <opencv2/core.hpp>

namespace reid::data {

/// Reads an image as 8-bit, 3-channel BGR. `synthetic://` addresses are rendered. Throws
/// reid::IOError naming the path when the file is missing, empty, truncated (JPEG without its
/// end marker, PNG without IEND) or not a decodable image.
cv::Mat read_image(const std::string& path);

}  // namespace reid::data
