#pragma once
/// @file
/// A trained network as a graph for inference: LibTorch's JIT tracer records the model's eval-mode
/// forward pass (images -> test feature) once, the weights become constants of the graph, batch
/// norms that follow a convolution are folded into it, and the result runs as a TorchScript
/// module (what the Embedder executes), is saved as a TorchScript file, or is written as ONNX
/// (deploy/onnx.h). Nothing here knows an architecture: any model built from traceable ops works.

#include <map>
#include <memory>
#include <string>

#include <torch/script.h>

#include "reid/models/model.h"

namespace reid::deploy {

/// Options of trace_model().
struct TraceOptions {
  /// Input size the model is traced at (the test transform's size).
  int64_t height = models::ModelOptions().height();
  int64_t width = models::ModelOptions().width();
  /// Fold every eval-mode batch norm that directly follows a convolution into the convolution.
  bool fold_batchnorm = true;
  /// Where the traced module's weights live and what type they are (float32; float16 or
  /// bfloat16 on CUDA). Folding is done in float32 first.
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat;
  /// Store the convolution weights channels-last (faster on CPU with oneDNN and on cuDNN).
  bool channels_last = false;
};

/// A traced model: `module.forward(images)` with images [N, 3, H, W] (any N) returns the test
/// features [N, D], not normalised, exactly what ReidModelImpl::forward(...).feature returns in
/// eval mode.
struct TracedModel {
  torch::jit::Module module;
  /// The forward graph without the module argument: input 0 is the images, output 0 the
  /// features; the weights are tensor constants.
  std::shared_ptr<torch::jit::Graph> graph;
  int64_t feature_dim = 0;
  int64_t height = 0;
  int64_t width = 0;
};

/// Traces `model` (put in eval mode, left as it was; its parameters are not changed and the
/// traced module holds copies). Throws reid::Error when the model's forward pass depends on the
/// batch size in a way tracing would freeze, or does not run.
TracedModel trace_model(models::ReidModelImpl& model, const TraceOptions& options = {});

/// Writes `traced` as a TorchScript file that both `torch.jit.load` (Python) and
/// `torch::jit::load` (C++) run; `metadata` is stored as extra files under "metadata/<key>"
/// (what the preprocessing is). Written to a temporary file and renamed into place.
void save_torchscript(const TracedModel& traced, const std::string& path,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace reid::deploy
