#pragma once
/// @file
/// Image decoding with errors that name the file. Nothing is decoded before its header has been
/// read: the format must be one LibReID reads (JPEG, PNG, BMP, WebP, PPM/PGM/PBM), the file
/// complete, and the declared size at most a pixel limit, so that a small hostile file cannot
/// make the decoder allocate gigabytes.

#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "reid/data/records.h"

namespace reid::data {

/// Default limit on decoded pixels (4096 x 4096); person crops are far smaller.
inline constexpr int64_t kDefaultMaxImagePixels = int64_t{4096} * 4096;

/// What an image header says.
struct ImageInfo {
  /// jpeg, png, bmp, webp or pnm.
  std::string format;
  int64_t width = 0;
  int64_t height = 0;
};

/// Format and size from an encoded image's header, without decoding. Throws reid::IOError naming
/// `path` for an unknown format, a malformed or truncated header, or a zero size.
ImageInfo probe_image(const std::vector<uchar>& bytes, const std::string& path);

/// Decodes `bytes` (named `path` in errors) to 8-bit BGR after probe_image(), the end-marker check
/// (a truncated JPEG or PNG decodes to grey without an error otherwise) and the pixel limit.
cv::Mat decode_image(const std::vector<uchar>& bytes, const std::string& path,
                     int64_t max_pixels = kDefaultMaxImagePixels);

/// Reads an image as 8-bit, 3-channel BGR. `synthetic://` addresses are rendered. Throws
/// reid::IOError naming the path when the file is missing, empty, truncated, larger than
/// `max_pixels`, or not a decodable image.
cv::Mat read_image(const std::string& path, int64_t max_pixels = kDefaultMaxImagePixels);

/// Reads a file's header and end marker only (no decoding): what check_images() runs on every
/// image before training. Throws like read_image().
ImageInfo read_image_info(const std::string& path, int64_t max_pixels = kDefaultMaxImagePixels);

/// Problems found by check_images().
struct ImageCheck {
  /// Records that passed, in order (tracklets with their good frames).
  std::vector<ImageRecord> good;
  /// "path: reason" for each record that did not.
  std::vector<std::string> bad;
};

/// read_image_info() on every record (synthetic ones pass); for a tracklet, on every frame: `bad`
/// lists each bad frame, and `good` holds the tracklet with the frames that passed (none: it is
/// left out).
ImageCheck check_images(const std::vector<ImageRecord>& records, int64_t max_pixels = kDefaultMaxImagePixels);

}  // namespace reid::data
