#pragma once
/// @file
/// Model summary: parameter counts and multiply-adds at a given input size.

#include <functional>
#include <string>

#include "reid/models/model.h"

namespace reid::models {

/// Size and cost of a model.
struct ModelSummary {
  /// Every parameter.
  int64_t parameters = 0;
  /// Parameters outside the classifier (what papers report).
  int64_t backbone_parameters = 0;
  /// Multiply-adds of convolutions and linear layers for one image at height x width
  /// (eval mode, classifier excluded; normalisation, pooling and activations not counted).
  int64_t mult_adds = 0;
  int64_t height = 0;
  int64_t width = 0;
  /// "2.17M parameters (2.17M without classifier), 0.98 G mult-adds at 256x128".
  std::string text() const;
};

/// Counts the multiply-adds of the convolutions (aten::conv2d) and linear layers (aten::linear)
/// that `run` executes on the calling thread, from the operators' input shapes.
int64_t count_mult_adds(const std::function<void()>& run);

/// Summary of `model` at `height` x `width` (runs one forward pass in eval mode on the model's
/// device, then restores the training flag).
ModelSummary summarize(ReidModelImpl& model, int64_t height, int64_t width);

}  // namespace reid::models
