#pragma once
/// @file
/// Center loss (Wen et al., ECCV 2016) as BoT uses it: one learnable centre per identity, pulled
/// towards its features. The centres are trained by their own SGD (lr 0.5 in BoT) with their
/// gradient rescaled by 1 / weight, so that the loss weight does not slow the centres down.

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace reid::losses {

/// sum_i |x_i - c_{y_i}|^2 / N, each term clamped to [1e-12, 1e12] as in BoT.
class CenterLossImpl : public torch::nn::Module {
 public:
  CenterLossImpl(int64_t num_classes, int64_t feature_dim);
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& targets);
  /// [num_classes, feature_dim], initialised from N(0, 1).
  torch::Tensor centers;
};
TORCH_MODULE(CenterLoss);

}  // namespace reid::losses
