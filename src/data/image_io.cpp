#include "reid/data/image_io.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "reid/core/error.h"
#include "reid/data/synthetic.h"

namespace reid::data {
namespace {

// Bounds-checked reads of the encoded bytes.
class Header {
 public:
  Header(const std::vector<uchar>& b, const std::string& path) : b_(b), path_(path) {}
  std::size_t size() const { return b_.size(); }
  uint32_t u8(std::size_t at) const { return need(at, 1), b_[at]; }
  uint32_t be16(std::size_t at) const { return need(at, 2), (uint32_t{b_[at]} << 8) | b_[at + 1]; }
  uint32_t le16(std::size_t at) const { return need(at, 2), uint32_t{b_[at]} | (uint32_t{b_[at + 1]} << 8); }
  uint32_t be32(std::size_t at) const { return (be16(at) << 16) | be16(at + 2); }
  uint32_t le32(std::size_t at) const { return le16(at) | (le16(at + 2) << 16); }
  uint32_t le24(std::size_t at) const { return le16(at) | (u8(at + 2) << 16); }
  bool starts(std::size_t at, const char* text) const {
    const std::size_t n = std::strlen(text);
    return at <= b_.size() && n <= b_.size() - at && std::memcmp(b_.data() + at, text, n) == 0;
  }
  [[noreturn]] void fail(const std::string& what) const { throw IOError(path_, what); }

 private:
  void need(std::size_t at, std::size_t n) const {
    if (at > b_.size() || n > b_.size() - at) fail("truncated image header");
  }
  const std::vector<uchar>& b_;
  const std::string& path_;
};

ImageInfo probe_jpeg(const Header& h) {
  std::size_t at = 2;
  while (true) {
    if (h.u8(at) != 0xFF) h.fail("malformed JPEG (expected a marker at byte " + std::to_string(at) + ")");
    while (h.u8(at) == 0xFF) ++at;  // fill bytes
    const uint32_t marker = h.u8(at++);
    if (marker == 0xD8 || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length
    if (marker == 0xD9 || marker == 0xDA) h.fail("malformed JPEG (no frame header before the image data)");
    const uint32_t length = h.be16(at);
    if (length < 2) h.fail("malformed JPEG (segment length " + std::to_string(length) + ")");
    const bool frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (frame) return {"jpeg", h.be16(at + 5), h.be16(at + 3)};
    at += length;
  }
}

ImageInfo probe_pnm(const Header& h) {
  // P1-P6, then width and height as decimal text, with # comments.
  std::size_t at = 2;
  int64_t values[2] = {0, 0};
  for (int64_t& v : values) {
    while (true) {
      const uint32_t c = h.u8(at);
      if (c == '#') {
        while (h.u8(at) != '\n') ++at;
      } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        ++at;
      } else {
        break;
      }
    }
    int digits = 0;
    while (h.u8(at) >= '0' && h.u8(at) <= '9') {
      if (++digits > 9) h.fail("malformed PNM header (size too large)");
      v = v * 10 + (h.u8(at++) - '0');
    }
    if (digits == 0) h.fail("malformed PNM header");
  }
  return {"pnm", values[0], values[1]};
}

// libjpeg decodes a truncated JPEG into a half-grey image with only a warning, and libpng may
// do similar, so check the end markers before decoding.
void check_complete(const std::vector<uchar>& bytes, const std::string& format, const std::string& path) {
  const std::size_t n = bytes.size();
  if (format == "jpeg") {
    std::size_t end = n;
    while (end > 2 && bytes[end - 1] == 0x00) --end;  // some writers pad with zeros
    if (end < 4 || bytes[end - 2] != 0xFF || bytes[end - 1] != 0xD9)
      throw IOError(path, "truncated JPEG (no end-of-image marker)");
  } else if (format == "png") {
    if (n < 20 || std::memcmp(bytes.data() + n - 8, "IEND", 4) != 0)
      throw IOError(path, "truncated PNG (no IEND chunk)");
  }
}

std::vector<uchar> read_bytes(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw IOError(path, "is a directory, not an image");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw IOError(path, std::filesystem::exists(path, ec) ? "cannot open the image (permission denied?)"
                                                                  : "cannot open the image (no such file)");
  const std::streamsize size = in.tellg();
  if (size <= 0) throw IOError(path, "the image file is empty");
  std::vector<uchar> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) throw IOError(path, "cannot read the image");
  return bytes;
}

void check_size(const ImageInfo& info, int64_t max_pixels, const std::string& path) {
  if (info.width <= 0 || info.height <= 0)
    throw IOError(path, "the " + info.format + " header declares a " + std::to_string(info.width) + "x" +
                            std::to_string(info.height) + " image");
  if (info.width > max_pixels / info.height)
    throw IOError(path, "the " + info.format + " header declares " + std::to_string(info.width) + "x" +
                            std::to_string(info.height) + " pixels, more than the limit of " +
                            std::to_string(max_pixels) + " (data.max_image_pixels); not decoded");
}

}  // namespace

ImageInfo probe_image(const std::vector<uchar>& bytes, const std::string& path) {
  const Header h(bytes, path);
  if (bytes.empty()) h.fail("the image file is empty");
  if (h.starts(0, "\xFF\xD8")) return probe_jpeg(h);
  if (h.starts(0, "\x89PNG\r\n\x1a\n")) {
    if (!h.starts(12, "IHDR")) h.fail("malformed PNG (no IHDR chunk)");
    return {"png", h.be32(16), h.be32(20)};
  }
  if (h.starts(0, "BM")) {
    const auto height = static_cast<int32_t>(h.le32(22));
    return {"bmp", static_cast<int32_t>(h.le32(18)), height < 0 ? -int64_t{height} : height};
  }
  if (h.starts(0, "RIFF") && h.starts(8, "WEBP")) {
    if (h.starts(12, "VP8 ")) return {"webp", h.le16(26) & 0x3FFF, h.le16(28) & 0x3FFF};
    if (h.starts(12, "VP8L")) {
      const uint32_t bits = h.le32(21);
      return {"webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1};
    }
    if (h.starts(12, "VP8X")) return {"webp", int64_t{h.le24(24)} + 1, int64_t{h.le24(27)} + 1};
    h.fail("malformed WebP header");
  }
  if (bytes.size() >= 2 && bytes[0] == 'P' && bytes[1] >= '1' && bytes[1] <= '6') return probe_pnm(h);
  h.fail("not an image LibReID reads (JPEG, PNG, BMP, WebP, PPM/PGM/PBM)");
}

cv::Mat decode_image(const std::vector<uchar>& bytes, const std::string& path, int64_t max_pixels) {
  const ImageInfo info = probe_image(bytes, path);
  check_size(info, max_pixels, path);
  check_complete(bytes, info.format, path);
  cv::Mat image;
  try {
    image = cv::imdecode(bytes, cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    throw IOError(path, std::string("cannot decode the ") + info.format + " image: " + e.what());
  }
  if (image.empty()) throw IOError(path, "not a decodable " + info.format + " image (corrupt)");
  return image;
}

cv::Mat read_image(const std::string& path, int64_t max_pixels) {
  SyntheticImage synthetic;
  if (parse_synthetic_path(path, synthetic)) return render_synthetic(synthetic);
  return decode_image(read_bytes(path), path, max_pixels);
}

ImageInfo read_image_info(const std::string& path, int64_t max_pixels) {
  SyntheticImage synthetic;
  if (parse_synthetic_path(path, synthetic)) return {"synthetic", synthetic.width, synthetic.height};
  const auto bytes = read_bytes(path);
  const ImageInfo info = probe_image(bytes, path);
  check_size(info, max_pixels, path);
  check_complete(bytes, info.format, path);
  return info;
}

ImageCheck check_images(const std::vector<ImageRecord>& records, int64_t max_pixels) {
  ImageCheck check;
  const auto passes = [&](const std::string& path) {
    try {
      read_image_info(path, max_pixels);
      return true;
    } catch (const IOError& e) {
      check.bad.push_back(e.what());
      return false;
    }
  };
  for (const auto& r : records) {
    if (!r.frames) {
      if (passes(r.path)) check.good.push_back(r);
      continue;
    }
    // A tracklet: every frame; it keeps the frames that pass (and goes when none does).
    auto frames = std::make_shared<std::vector<std::string>>();
    for (const auto& frame : *r.frames)
      if (passes(frame)) frames->push_back(frame);
    if (frames->size() == r.frames->size()) {
      check.good.push_back(r);
    } else if (!frames->empty()) {
      ImageRecord kept = r;
      kept.path = frames->front();
      kept.frames = std::move(frames);
      check.good.push_back(std::move(kept));
    }
  }
  return check;
}

}  // namespace reid::data
