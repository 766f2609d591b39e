#pragma once
/// @file
/// Center loss (Wen et al., ECCV 2016) as BoT uses it: one learnable centre per identity, pulled
/// towards its features. The centres are trained by their own SGD (lr 0.5 in BoT) with their
/// gradient rescaled by 1 / weight, so that the loss weight does not slow the centres down.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "reid/losses/term.h"

namespace reid::losses {

/// sum_i |x_i - c_{y_i}|^2 / N, each term clamped to [1e-12, 1e12] as in BoT.
///
/// As a loss term ("center") it acts on the model's embeddings (all, or those named), with one
/// set of centres per embedding: `centers` for the first (the parameter name of a single-branch
/// model, which old checkpoints hold) and `centers_<name>` for the others.
class CenterLossImpl : public LossTermImpl {
 public:
  /// One embedding of width `feature_dim`.
  CenterLossImpl(int64_t num_classes, int64_t feature_dim);
  /// The embeddings `inputs` (name, width); `lr` is the centres' own SGD learning rate.
  CenterLossImpl(int64_t num_classes, const std::vector<std::pair<std::string, int64_t>>& inputs, double lr);
  /// The loss of `features` [N, D] against the first set of centres.
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& targets);
  TermValue evaluate(const models::ReidOutput& output, const torch::Tensor& targets) override;
  std::unique_ptr<torch::optim::Optimizer> make_optimizer() override;
  double optimizer_grad_scale() const override { return 1.0 / weight(); }
  /// [num_classes, feature_dim] of the first embedding, initialised from N(0, 1).
  torch::Tensor centers;

 private:
  static torch::Tensor loss(const torch::Tensor& centers, const torch::Tensor& features, const torch::Tensor& targets);
  std::vector<std::string> names_;
  std::vector<torch::Tensor> sets_;
  double lr_ = 0.5;
};
TORCH_MODULE(CenterLoss);

}  // namespace reid::losses
