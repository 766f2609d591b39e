#pragma once
/// @file
/// reid-export's library entry point: a trained model written as ONNX and / or TorchScript, with
/// the preprocessing it expects recorded in the file's metadata.

#include <map>
#include <string>
#include <vector>

#include "reid/config/config.h"
#include "reid/deploy/onnx.h"
#include "reid/deploy/trace.h"
#include "reid/models/model.h"

namespace reid::deploy {

/// Options of export_model().
struct ExportOptions {
  /// ONNX file to write ("" = none).
  std::string onnx;
  /// TorchScript file to write ("" = none).
  std::string torchscript;
  /// ONNX operator set (13 to 17).
  int64_t opset = OnnxOptions{}.opset;
  /// Fold batch norms into convolutions (fewer nodes; features equal to ~1e-6).
  bool fold_batchnorm = TraceOptions{}.fold_batchnorm;
};

/// The configured model with `weights` loaded, on the CPU in float32 and NCHW, in eval mode: what
/// trace_model() starts from (the traced copy is moved and converted afterwards). A file that does
/// not fit the model is a reid::IOError naming it.
models::ReidModel load_for_tracing(const Config& config, const std::string& weights,
                                   const models::ModelRegistry& models = models::builtin_models());

/// What a user of an exported file must know to feed it (keys "reid.*"): model name, input
/// size, channel order and layout, pixel scale, mean and std, resize method, feature width and
/// whether the features are normalised.
std::map<std::string, std::string> preprocessing_metadata(const Config& config, int64_t feature_dim);

/// Loads `weights` into the configured model on the CPU (float32), traces it at the test size
/// and writes the files `options` asks for. Returns the traced model.
TracedModel export_model(const Config& config, const std::string& weights, const ExportOptions& options,
                         const models::ModelRegistry& models = models::builtin_models());

}  // namespace reid::deploy
