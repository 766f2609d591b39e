#pragma once
/// @file
/// State dicts shared with Python: read what `torch.save(model.state_dict(), path)` wrote, load it
/// into any LibReID model by name, and save LibReID weights in the same format for `torch.load`.

#include <map>
#include <string>
#include <vector>

#include <torch/nn/module.h>

namespace reid::models {

/// Parameter and buffer tensors by dotted name (`conv2.0.conv2a.conv1.weight`).
using StateDict = std::map<std::string, torch::Tensor>;

/// The parameters and buffers of `module` (the tensors themselves, not copies).
StateDict state_dict(const torch::nn::Module& module);

/// Reads a state dict saved by Python's torch.save (zip format, PyTorch >= 1.6) or by
/// save_weights(). A checkpoint dict holding the weights under "state_dict" or "model" (torchreid,
/// fast-reid) is unwrapped, and a DataParallel "module." prefix is removed. Throws reid::IOError.
StateDict read_state_dict(const std::string& path);

/// Writes `state` so that Python's `torch.load(path)` returns a dict of tensors. Written to a
/// temporary file and renamed into place. Throws reid::IOError.
void write_state_dict(const StateDict& state, const std::string& path);

/// What load_state_dict() did.
struct LoadReport {
  /// Keys copied into the model.
  std::vector<std::string> loaded;
  /// Model keys the state dict lacks.
  std::vector<std::string> missing;
  /// State-dict keys the model lacks.
  std::vector<std::string> unexpected;
  /// Keys present in both with different shapes ("name: [a, b] vs [c, d]").
  std::vector<std::string> mismatched;
  /// One-paragraph summary for the log.
  std::string summary() const;
};

/// Copies `state` into `module` by name. Strict: any missing, unexpected or mismatched key is a
/// reid::Error listing them (and nothing is changed). Non-strict: shape mismatches (e.g. the
/// classifier of another dataset) are skipped; the report says what was skipped.
LoadReport load_state_dict(torch::nn::Module& module, const StateDict& state, bool strict);

/// read_state_dict() + the model's adapt_state_dict() (when `module` is a ReidModelImpl) +
/// load_state_dict(); logs a warning summary of skipped keys when not strict.
LoadReport load_weights(torch::nn::Module& module, const std::string& path, bool strict);

/// write_state_dict(state_dict(module), path).
void save_weights(const torch::nn::Module& module, const std::string& path);

/// Throws reid::Error when a parameter or buffer of `module` holds NaN or infinity, naming `what`
/// and the first offending tensors (weights that must never be written as good ones).
void check_finite(const torch::nn::Module& module, const std::string& what);

}  // namespace reid::models
