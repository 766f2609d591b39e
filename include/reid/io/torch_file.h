#pragma once
/// @file
/// A reader for files written by Python's `torch.save` (the zip format of PyTorch >= 1.6).
///
/// LibTorch's own reader (torch::jit::pickle_load) is not used: in LibTorch 2.11 it still fails
/// on a plain `torch.save(model.state_dict())` and on the checkpoints torchreid and fast-reid
/// write (an internal assert on the OrderedDict's `_metadata`; unknown classes), and a 277-byte
/// file whose string claims 4 GiB makes it allocate 4 GiB (found by fuzz/fuzz_libtorch_pickle,
/// the comparison in docs/testing.md). This reader runs the pickle program itself, bounds every
/// length by the bytes present, and understands what checkpoints hold: dicts and
/// OrderedDicts, lists, tuples, sets, strings, numbers, booleans, None and tensors of every real
/// dtype. Objects of other classes (argparse namespaces, numpy scalars, ...) are kept as opaque
/// placeholders, so a checkpoint that contains them still yields its state dict.

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace reid::io {

/// A Python value read from a pickle. Containers are shared (Python reference semantics).
struct PyValue {
  enum class Kind { kNone, kBool, kInt, kFloat, kString, kTensor, kList, kTuple, kDict, kGlobal, kOpaque };
  Kind kind = Kind::kNone;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0.0;
  /// kString: the text; kGlobal / kOpaque: "module.name" of the class or function.
  std::string text;
  torch::Tensor tensor;
  /// kList / kTuple items.
  std::shared_ptr<std::vector<PyValue>> items;
  /// kDict entries, in insertion order.
  std::shared_ptr<std::vector<std::pair<PyValue, PyValue>>> entries;

  bool is_dict() const { return kind == Kind::kDict; }
  bool is_tensor() const { return kind == Kind::kTensor; }
  bool is_string() const { return kind == Kind::kString; }
  /// The dict value under string key `key`, or nullptr.
  const PyValue* find(const std::string& key) const;
};

/// Reads a torch.save file. Throws reid::IOError naming the file for a missing, truncated,
/// damaged (see check_zip_archive) or non-zip file, or a pickle this reader does not
/// understand. Safe on any input: hostile lengths, shapes, strides and nesting are errors.
PyValue load_torch_file(const std::string& path);

/// load_torch_file() on bytes in memory; `name` names them in errors.
PyValue parse_torch_file(const std::string& bytes, const std::string& name);

/// Checks that `bytes` is a complete zip archive as torch.save and LibTorch write it (stored
/// records, optionally zip64) and that every record's data matches the CRC-32 its directory
/// entry records, so that a flipped byte anywhere in the data is caught before anything is
/// loaded. Throws reid::IOError naming `name` (and the damaged record).
void check_zip_archive(const std::string& bytes, const std::string& name);

/// Reads the whole file and check_zip_archive()s it. Throws reid::IOError naming the file.
std::string read_checked_archive(const std::string& path);

}  // namespace reid::io
