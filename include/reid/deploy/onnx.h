#pragma once
/// @file
/// ONNX export of a traced model (deploy/trace.h). The graph is not described per architecture:
/// each aten op the tracer recorded is translated by one entry of a table (aten op -> ONNX
/// nodes), so any model built from supported ops exports without new code, and a model using an
/// op the table lacks fails with an error naming the op. The graph written is plain: weights as
/// initializers, no shape arithmetic, no Identity nodes, dynamic batch only (what OpenCV's DNN
/// module and onnxruntime both read).

#include <map>
#include <string>
#include <vector>

#include "reid/deploy/trace.h"

namespace reid::deploy {

/// Options of export_onnx().
struct OnnxOptions {
  /// Operator set, 13 to 17 (the nodes written mean the same in all of them; 18 moves the
  /// Reduce ops' axes to inputs).
  int64_t opset = 13;
  std::string input_name = "images";
  std::string output_name = "features";
  /// Written as the model's metadata_props (e.g. the preprocessing: input size, mean, std).
  std::map<std::string, std::string> metadata;
};

/// The ONNX model (serialised ModelProto) of `traced`, which must hold float32 weights on the
/// CPU. Throws reid::Error naming every aten op that has no conversion.
std::string to_onnx(const TracedModel& traced, const OnnxOptions& options = {});

/// to_onnx() written to `path` (temporary file renamed into place). Throws reid::Error /
/// reid::IOError.
void export_onnx(const TracedModel& traced, const std::string& path, const OnnxOptions& options = {});

/// The aten ops the exporter translates, sorted.
std::vector<std::string> onnx_supported_ops();

}  // namespace reid::deploy
