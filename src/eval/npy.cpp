#include "reid/eval/npy.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/utils/files.h"

namespace reid::eval {
namespace {

struct Header {
  std::string descr;
  bool fortran = false;
  std::vector<int64_t> shape;
};

std::string dict_value(const std::string& header, const std::string& key, const std::string& path) {
  const auto at = header.find("'" + key + "'");
  if (at == std::string::npos) throw IOError(path, "malformed .npy header: no '" + key + "'");
  const auto colon = header.find(':', at);
  if (colon == std::string::npos) throw IOError(path, "malformed .npy header");
  std::size_t start = header.find_first_not_of(' ', colon + 1);
  std::size_t end = start;
  if (header[start] == '(') {
    end = header.find(')', start);
    if (end == std::string::npos) throw IOError(path, "malformed .npy header shape");
    return header.substr(start, end - start + 1);
  }
  if (header[start] == '\'') {
    end = header.find('\'', start + 1);
    return header.substr(start + 1, end - start - 1);
  }
  end = header.find_first_of(",}", start);
  return header.substr(start, end - start);
}

Header parse_header(std::istream& in, const std::string& path) {
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    throw IOError(path, "not a .npy file (bad magic; save it with numpy.save)");
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t length = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!in.read(reinterpret_cast<char*>(b), 2)) throw IOError(path, "truncated .npy header");
    length = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char*>(b), 4)) throw IOError(path, "truncated .npy header");
    length = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
  } else {
    throw IOError(path, "unsupported .npy format version " + std::to_string(major));
  }
  std::string text(length, '\0');
  if (!in.read(&text[0], length)) throw IOError(path, "truncated .npy header");
  Header h;
  h.descr = dict_value(text, "descr", path);
  h.fortran = dict_value(text, "fortran_order", path) == "True";
  const std::string shape = dict_value(text, "shape", path);
  std::string inner = shape.substr(1, shape.size() - 2);
  std::istringstream fields(inner);
  std::string field;
  while (std::getline(fields, field, ',')) {
    const auto first = field.find_first_not_of(' ');
    if (first == std::string::npos) continue;
    try {
      h.shape.push_back(std::stoll(field.substr(first)));
    } catch (const std::exception&) {
      throw IOError(path, "malformed .npy shape " + shape);
    }
  }
  return h;
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
  utils::write_atomically(path, "the .npy file", [&](const std::string& temporary) {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    if (!out) throw IOError(temporary, "cannot write the .npy file");
    out.write("\x93NUMPY\x01\x00", 8);
    const uint16_t length = static_cast<uint16_t>(header.size());
    const char len[2] = {static_cast<char>(length & 0xFF), static_cast<char>(length >> 8)};
    out.write(len, 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
    if (!out.flush()) throw IOError(temporary, "cannot write the .npy file (disk full?)");
  });
}

}  // namespace

torch::Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError(path, "cannot open the .npy file");
  const Header h = parse_header(in, path);
  const torch::Dtype dtype = dtype_of(h.descr, path);
  std::vector<int64_t> shape = h.shape;
  if (h.fortran) std::reverse(shape.begin(), shape.end());
  auto tensor = torch::empty(shape, torch::TensorOptions().dtype(dtype));
  const std::size_t bytes = static_cast<std::size_t>(tensor.numel()) * tensor.element_size();
  if (bytes > 0 && !in.read(static_cast<char*>(tensor.data_ptr()), static_cast<std::streamsize>(bytes)))
    throw IOError(path, "truncated .npy file: expected " + std::to_string(bytes) + " bytes of data");
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
  std::size_t width = 1;
  for (const auto& v : values) width = std::max(width, v.size());
  // UCS-4 little-endian; paths are written byte by byte (ASCII / Latin-1 stay exact).
  std::vector<uint32_t> data(values.size() * width, 0);
  for (std::size_t i = 0; i < values.size(); ++i)
    for (std::size_t j = 0; j < values[i].size(); ++j) data[i * width + j] = static_cast<unsigned char>(values[i][j]);
  write_raw(path, "<U" + std::to_string(width), {static_cast<int64_t>(values.size())}, data.data(), data.size() * 4);
}

std::vector<std::string> read_npy_strings(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IOError(path, "cannot open the .npy file");
  const Header h = parse_header(in, path);
  if (h.descr.size() < 3 || h.descr.compare(0, 2, "<U") != 0 || h.shape.size() != 1)
    throw IOError(path, "expected a 1-D unicode array (got dtype '" + h.descr + "')");
  const std::size_t width = std::stoul(h.descr.substr(2));
  std::vector<uint32_t> data(static_cast<std::size_t>(h.shape[0]) * width);
  if (!data.empty() && !in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(data.size() * 4)))
    throw IOError(path, "truncated .npy file");
  std::vector<std::string> out;
  for (int64_t i = 0; i < h.shape[0]; ++i) {
    std::string s;
    for (std::size_t j = 0; j < width && data[i * width + j] != 0; ++j) s += static_cast<char>(data[i * width + j]);
    out.push_back(s);
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

}  // namespace reid::eval
