#pragma once
/// @file
/// What every ReID model returns.

#include <torch/types.h>

namespace reid::models {

/// The output of a ReID model's forward pass. Losses consume it; the model never knows which
/// loss is used.
struct ReidOutput {
  /// Pooled (and, for OSNet, embedded) feature f_t: what the triplet and center losses use.
  torch::Tensor global_feat;
  /// Feature after the neck f_i (equal to global_feat when there is no neck).
  torch::Tensor bn_feat;
  /// Classifier logits [N, num_classes]; undefined in eval mode or without a classifier.
  torch::Tensor logits;
  /// The test feature (global_feat or bn_feat, as the head's neck_feat says).
  torch::Tensor feature;
};

}  // namespace reid::models
