#include "reid/io/npy.h"

#include <cstring>
#include <limits>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/utils/files.h"

namespace reid::io {
namespace {

struct Header {
  std::string descr;
  bool fortran = false;
  std::vector<int64_t> shape;
  std::size_t data_offset = 0;  // where the array data starts in the file
};

// The header is a Python dict literal; this parser accepts exactly what numpy writes (quoted
// keys, a quoted descr, True/False, a tuple of non-negative integers) and bounds every index.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : t_(text), path_(path) {}

  Header parse() {
    Header h;
    bool descr = false, order = false, shape = false;
    expect('{');
    while (true) {
      spaces();
      if (peek() == '}') break;
      const std::string key = quoted();
      spaces();
      expect(':');
      spaces();
      if (key == "descr") {
        h.descr = quoted();
        descr = true;
      } else if (key == "fortran_order") {
        h.fortran = boolean();
        order = true;
      } else if (key == "shape") {
        h.shape = tuple();
        shape = true;
      } else {
        fail("unknown key '" + key + "'");
      }
      spaces();
      if (peek() == ',') ++pos_;
    }
    if (!descr || !order || !shape) fail("missing descr, fortran_order or shape");
    return h;
  }

 private:
  char peek() const {
    if (pos_ >= t_.size()) fail("unexpected end");
    return t_[pos_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  void spaces() {
    while (pos_ < t_.size() && (t_[pos_] == ' ' || t_[pos_] == '\n')) ++pos_;
  }
  std::string quoted() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string");
    const auto end = t_.find(q, pos_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string s = t_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return s;
  }
  bool boolean() {
    if (t_.compare(pos_, 4, "True") == 0) return pos_ += 4, true;
    if (t_.compare(pos_, 5, "False") == 0) return pos_ += 5, false;
    fail("expected True or False");
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> out;
    expect('(');
    while (true) {
      spaces();
      if (peek() == ')') break;
      int64_t v = 0;
      std::size_t digits = 0;
      while (pos_ < t_.size() && t_[pos_] >= '0' && t_[pos_] <= '9') {
        if (++digits > 15) fail("dimension too large");
        v = v * 10 + (t_[pos_++] - '0');
      }
      if (digits == 0) fail("expected a non-negative integer dimension");
      out.push_back(v);
      if (out.size() > 32) fail("too many dimensions");
      spaces();
      if (peek() == 'L') ++pos_;  // Python 2 longs
      if (peek() == ',') ++pos_;
    }
    ++pos_;
    return out;
  }
  [[noreturn]] void fail(const std::string& what) const { throw IOError(path_, "malformed .npy header: " + what); }

  const std::string& t_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

Header parse_header(const std::string& file, const std::string& path) {
  if (file.size() < 10 || file.compare(0, 6, "\x93NUMPY") != 0)
    throw IOError(path, "not a .npy file (bad magic; save it with numpy.save)");
  const int major = static_cast<unsigned char>(file[6]);
  std::size_t length = 0, start = 0;
  const auto byte = [&](std::size_t i) { return static_cast<std::size_t>(static_cast<unsigned char>(file[i])); };
  if (major == 1) {
    length = byte(8) | (byte(9) << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (file.size() < 12) throw IOError(path, "truncated .npy header");
    length = byte(8) | (byte(9) << 8) | (byte(10) << 16) | (byte(11) << 24);
    start = 12;
  } else {
    throw IOError(path, "unsupported .npy format version " + std::to_string(major));
  }
  if (length > file.size() - start) throw IOError(path, "truncated .npy header");
  const std::string text = file.substr(start, length);
  Header h = HeaderParser(text, path).parse();
  h.data_offset = start + length;
  return h;
}

// Elements of `shape`, or an IOError when they do not fit in the data the file holds. A shape with a
// zero dimension holds no data, but its other dimensions still become the tensor's sizes and strides,
// so their product must fit in int64 bytes as well (a header "(0, 10**15, 10**15)" is refused here,
// not by torch when the tensor is made).
std::size_t checked_elements(const Header& h, std::size_t element, std::size_t file_size, const std::string& path) {
  std::size_t count = 1, extent = 1;
  const auto limit = static_cast<std::size_t>(std::numeric_limits<int64_t>::max()) / element;
  for (int64_t d : h.shape) {
    if (d == 0) {
      count = 0;
      continue;
    }
    if (extent > limit / static_cast<std::size_t>(d))
      throw IOError(path, "malformed .npy header: the shape's dimensions overflow a 64-bit size");
    extent *= static_cast<std::size_t>(d);
    if (count != 0 && count > (file_size / element) / static_cast<std::size_t>(d))
      throw IOError(path, "the .npy header claims more data than the file holds");
    if (count != 0) count *= static_cast<std::size_t>(d);
  }
  if (count * element > file_size - h.data_offset)
    throw IOError(path, "truncated .npy file: the header's shape needs " + std::to_string(count * element) +
                            " bytes of data, the file has " + std::to_string(file_size - h.data_offset));
  return count;
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw IOError(path, "is a directory, not a .npy file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw IOError(path, "cannot open the .npy file");
  const std::streamsize size = in.tellg();
  std::string bytes(static_cast<std::size_t>(std::max<std::streamsize>(size, 0)), '\0');
  in.seekg(0);
  if (size > 0 && !in.read(bytes.data(), size)) throw IOError(path, "cannot read the .npy file");
  return bytes;
}

// UTF-8 -> code points (numpy's '<U' arrays hold UCS-4); invalid bytes map to U+FFFD.
std::vector<uint32_t> decode_utf8(const std::string& s) {
  std::vector<uint32_t> out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
    uint32_t cp = extra == 0 ? c : extra == 1 ? (c & 0x1Fu) : extra == 2 ? (c & 0x0Fu) : (c & 0x07u);
    bool ok = extra >= 0;
    for (int k = 1; ok && k <= extra; ++k) {
      if (i + static_cast<std::size_t>(k) >= s.size()) {
        ok = false;
        break;
      }
      const auto d = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
      ok = (d >> 6) == 2;
      cp = (cp << 6) | (d & 0x3Fu);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += static_cast<std::size_t>(extra) + 1;
  }
  return out;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

torch::Dtype dtype_of(const std::string& descr, const std::string& path) {
  if (descr == "<f4") return torch::kFloat;
  if (descr == "<f8") return torch::kDouble;
  if (descr == "<i8") return torch::kLong;
  if (descr == "<i4") return torch::kInt;
  if (descr == "|u1" || descr == "<u1") return torch::kByte;
  throw IOError(path, "unsupported .npy dtype '" + descr + "' (use float32, float64, int64, int32 or uint8, little-endian)");
}

std::string descr_of(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat: return "<f4";
    case torch::kDouble: return "<f8";
    case torch::kLong: return "<i8";
    case torch::kInt: return "<i4";
    case torch::kByte: return "|u1";
    default: throw Error("write_npy: unsupported dtype");
  }
}

void write_raw(const std::string& path, const std::string& descr, const std::vector<int64_t>& shape, const void* data,
               std::size_t bytes) {
  std::string shape_text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) shape_text += std::to_string(shape[i]) + (shape.size() == 1 ? "," : i + 1 < shape.size() ? ", " : "");
  shape_text += ")";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape_text + ", }";
  // Pad so that the data starts on a 64-byte boundary; the header ends with a newline.
  const std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string file("\x93NUMPY\x01\x00", 8);
  const auto length = static_cast<uint16_t>(header.size());
  file += static_cast<char>(length & 0xFF);
  file += static_cast<char>(length >> 8);
  file += header;
  file.append(static_cast<const char*>(data), bytes);
  utils::write_file_atomically(path, file, "the .npy file");
}

}  // namespace

torch::Tensor read_npy(const std::string& path) {
  const std::string file = read_file(path);
  const Header h = parse_header(file, path);
  const torch::Dtype dtype = dtype_of(h.descr, path);
  const std::size_t count = checked_elements(h, c10::elementSize(dtype), file.size(), path);
  std::vector<int64_t> shape = h.shape;
  if (h.fortran) std::reverse(shape.begin(), shape.end());
  auto tensor = torch::empty(shape, torch::TensorOptions().dtype(dtype));
  if (count > 0) std::memcpy(tensor.data_ptr(), file.data() + h.data_offset, count * c10::elementSize(dtype));
  if (h.fortran && tensor.dim() > 1) {
    std::vector<int64_t> order;
    for (int64_t i = tensor.dim() - 1; i >= 0; --i) order.push_back(i);
    tensor = tensor.permute(order).contiguous();
  }
  return tensor;
}

void write_npy(const std::string& path, const torch::Tensor& tensor) {
  const auto t = tensor.detach().to(torch::kCPU).contiguous();
  write_raw(path, descr_of(t.scalar_type()), t.sizes().vec(), t.data_ptr(),
            static_cast<std::size_t>(t.numel()) * t.element_size());
}

void write_npy_strings(const std::string& path, const std::vector<std::string>& values) {
  // UCS-4 code points decoded from UTF-8, so that numpy reads back the same text.
  std::vector<std::vector<uint32_t>> decoded;
  std::size_t width = 1;
  for (const auto& v : values) {
    decoded.push_back(decode_utf8(v));
    width = std::max(width, decoded.back().size());
  }
  std::vector<uint32_t> data(values.size() * width, 0);
  for (std::size_t i = 0; i < decoded.size(); ++i)
    std::copy(decoded[i].begin(), decoded[i].end(), data.begin() + static_cast<std::ptrdiff_t>(i * width));
  write_raw(path, "<U" + std::to_string(width), {static_cast<int64_t>(values.size())}, data.data(), data.size() * 4);
}

std::vector<std::string> read_npy_strings(const std::string& path) {
  const std::string file = read_file(path);
  const Header h = parse_header(file, path);
  const bool digits = h.descr.size() >= 3 && h.descr.size() <= 9 &&
                      h.descr.find_first_not_of("0123456789", 2) == std::string::npos;
  if (!digits || h.descr.compare(0, 2, "<U") != 0 || h.shape.size() != 1)
    throw IOError(path, "expected a 1-D unicode array (got dtype '" + h.descr + "')");
  const std::size_t width = std::stoul(h.descr.substr(2));
  if (width == 0) throw IOError(path, "unicode array of width 0");
  Header cells = h;
  cells.shape.push_back(static_cast<int64_t>(width));
  checked_elements(cells, 4, file.size(), path);
  const auto code = [&](std::size_t i) {
    uint32_t v;
    std::memcpy(&v, file.data() + h.data_offset + 4 * i, 4);
    return v;
  };
  std::vector<std::string> out;
  for (int64_t i = 0; i < h.shape[0]; ++i) {
    std::string s;
    for (std::size_t j = 0; j < width; ++j) {
      const uint32_t cp = code(static_cast<std::size_t>(i) * width + j);
      if (cp == 0) break;
      append_utf8(s, cp);
    }
    out.push_back(std::move(s));
  }
  return out;
}

torch::Tensor read_features(const std::string& path) {
  auto t = read_npy(path);
  if (t.dim() != 2) throw IOError(path, "features must be a 2-D [N, D] array (got shape " + std::to_string(t.dim()) + "-D)");
  if (!t.is_floating_point()) throw IOError(path, "features must be float32 or float64");
  if (t.size(0) == 0 || t.size(1) == 0) throw IOError(path, "the feature array is empty");
  t = t.to(torch::kFloat);
  const auto finite = torch::isfinite(t).all(1);
  if (!finite.all().item<bool>()) {
    const int64_t row = finite.logical_not().nonzero()[0][0].item<int64_t>();
    throw IOError(path, "non-finite feature values (NaN or inf), first in row " + std::to_string(row));
  }
  return t;
}

torch::Tensor read_labels(const std::string& path, int64_t expected) {
  auto t = read_npy(path);
  if (t.dim() != 1) throw IOError(path, "labels must be a 1-D [N] array");
  if (t.is_floating_point()) throw IOError(path, "labels must be integers (int64 or int32)");
  if (expected >= 0 && t.size(0) != expected)
    throw IOError(path, "has " + std::to_string(t.size(0)) + " labels but the features have " +
                            std::to_string(expected) + " rows");
  return t.to(torch::kLong);
}

}  // namespace reid::io
