#include "reid/data/image_io.h"

#include <cstring>
#include <fstream>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "reid/core/error.h"
#include "reid/data/synthetic.h"

namespace reid::data {
namespace {

// libjpeg decodes a truncated JPEG into a half-grey image with only a warning, and libpng may
// do similar, so check the end markers before decoding.
void check_complete(const std::vector<uchar>& bytes, const std::string& path) {
  const std::size_t n = bytes.size();
  if (n >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8) {
    std::size_t end = n;
    while (end > 2 && bytes[end - 1] == 0x00) --end;  // some writers pad with zeros
    if (end < 4 || bytes[end - 2] != 0xFF || bytes[end - 1] != 0xD9)
      throw IOError(path, "truncated JPEG (no end-of-image marker)");
  } else if (n >= 8 && std::memcmp(bytes.data(), "\x89PNG\r\n\x1a\n", 8) == 0) {
    if (n < 20 || std::memcmp(bytes.data() + n - 8, "IEND", 4) != 0)
      throw IOError(path, "truncated PNG (no IEND chunk)");
  }
}

}  // namespace

cv::Mat read_image(const std::string& path) {
  SyntheticImage synthetic;
  if (parse_synthetic_path(path, synthetic)) return render_synthetic(synthetic);
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw IOError(path, "cannot open the image");
  const std::streamsize size = in.tellg();
  if (size <= 0) throw IOError(path, "the image file is empty");
  std::vector<uchar> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) throw IOError(path, "cannot read the image");
  check_complete(bytes, path);
  cv::Mat image = cv::imdecode(bytes, cv::IMREAD_COLOR);
  if (image.empty()) throw IOError(path, "not a decodable image (corrupt, or an unsupported format)");
  return image;
}

}  // namespace reid::data
