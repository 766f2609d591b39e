#pragma once
// Reading MATLAB .mat files through matio (private to the dataset parsers; only compiled when
// REID_HAVE_MATIO): the file, its variables, and numeric arrays as integers.

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <matio.h>

#include "reid/core/error.h"

namespace reid::data::matlab {

/// An open .mat file; IOError naming it when it is missing or not a MATLAB file.
struct MatFile {
  explicit MatFile(const std::string& file) : path(file) {
    if (!std::filesystem::is_regular_file(path)) throw IOError(path, "file not found");
    mat = Mat_Open(path.c_str(), MAT_ACC_RDONLY);
    if (!mat) throw IOError(path, "cannot open the MATLAB file (not a .mat file, or truncated)");
  }
  ~MatFile() {
    if (mat) Mat_Close(mat);
  }
  MatFile(const MatFile&) = delete;
  MatFile& operator=(const MatFile&) = delete;

  struct VarDeleter {
    void operator()(matvar_t* v) const { Mat_VarFree(v); }
  };
  using Var = std::unique_ptr<matvar_t, VarDeleter>;

  /// The variable `name`, read whole; IOError when it is missing or unreadable.
  Var read(const std::string& name) const {
    matvar_t* v = Mat_VarRead(mat, name.c_str());
    if (!v) throw IOError(path, "variable '" + name + "' not found or unreadable");
    return Var(v);
  }

  std::string path;
  mat_t* mat = nullptr;
};

inline std::size_t element_count(const matvar_t* v) {
  std::size_t n = 1;
  for (int i = 0; i < v->rank; ++i) n *= v->dims[i];
  return n;
}

/// Every element of a numeric array (column-major, as MATLAB stores it) as an integer. IOError
/// naming `what` for a non-numeric array, or a real value that is not a whole number in range.
inline std::vector<int64_t> numeric_vector(const matvar_t* v, const std::string& what, const std::string& path) {
  const std::size_t n = element_count(v);
  std::vector<int64_t> out(n);
  if (n == 0) return out;
  if (!v->data) throw IOError(path, what + " has no data");
  if (v->isComplex) throw IOError(path, what + " is complex");
  const auto whole = [&](double x) {
    if (!std::isfinite(x) || x != std::floor(x) || std::fabs(x) > 9.0e15)
      throw IOError(path, what + " holds " + std::to_string(x) + ", not a whole number");
    return static_cast<int64_t>(x);
  };
  for (std::size_t i = 0; i < n; ++i) {
    switch (v->class_type) {
      case MAT_C_DOUBLE: out[i] = whole(static_cast<const double*>(v->data)[i]); break;
      case MAT_C_SINGLE: out[i] = whole(static_cast<const float*>(v->data)[i]); break;
      case MAT_C_INT32: out[i] = static_cast<const int32_t*>(v->data)[i]; break;
      case MAT_C_UINT32: out[i] = static_cast<const uint32_t*>(v->data)[i]; break;
      case MAT_C_INT64: out[i] = static_cast<const int64_t*>(v->data)[i]; break;
      case MAT_C_UINT64: out[i] = static_cast<int64_t>(static_cast<const uint64_t*>(v->data)[i]); break;
      case MAT_C_INT16: out[i] = static_cast<const int16_t*>(v->data)[i]; break;
      case MAT_C_UINT16: out[i] = static_cast<const uint16_t*>(v->data)[i]; break;
      case MAT_C_INT8: out[i] = static_cast<const int8_t*>(v->data)[i]; break;
      case MAT_C_UINT8: out[i] = static_cast<const uint8_t*>(v->data)[i]; break;
      default: throw IOError(path, what + " is not numeric");
    }
  }
  return out;
}

}  // namespace reid::data::matlab
