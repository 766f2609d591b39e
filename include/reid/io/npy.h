#pragma once
/// @file
/// NumPy .npy files: the format Python users already export features in. Reads and writes
/// float32/float64/int64/int32/uint8 arrays (C or Fortran order, format versions 1-3) and
/// unicode string arrays (for image paths).

#include <string>
#include <vector>

#include <torch/types.h>

namespace reid::io {

/// Reads an .npy array into a CPU tensor of the matching dtype. Throws reid::IOError naming the
/// file for a missing, truncated or malformed file or an unsupported dtype.
torch::Tensor read_npy(const std::string& path);

/// Writes a CPU/GPU tensor (float32, float64, int64, int32, uint8) as .npy (through a temporary
/// file and a rename). Throws reid::IOError.
void write_npy(const std::string& path, const torch::Tensor& tensor);

/// Writes strings as a 1-D unicode array ('<U<n>'), readable by numpy.load.
void write_npy_strings(const std::string& path, const std::vector<std::string>& values);

/// Reads a 1-D unicode array written by write_npy_strings() or numpy.
std::vector<std::string> read_npy_strings(const std::string& path);

/// Features: a finite float [N, D] array (float64 is converted to float32). Throws reid::IOError
/// naming the file and the first non-finite row.
torch::Tensor read_features(const std::string& path);

/// Labels (pids or camids): an integer [N] array as int64; `expected` (>= 0) is checked against N.
torch::Tensor read_labels(const std::string& path, int64_t expected = -1);

}  // namespace reid::io
