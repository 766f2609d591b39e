#pragma once
/// @file
/// The training objective as a weighted set of named terms, built from options. It consumes the
/// model's ReidOutput; the model never knows which losses are used.

#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "reid/losses/center.h"
#include "reid/losses/triplet.h"
#include "reid/models/output.h"

namespace reid::losses {

/// Options of LossSet.
struct LossSetOptions {
  /// Terms: "ce" (label-smoothed cross-entropy on the logits), "triplet" (batch-hard, on
  /// global_feat) and "center" (on global_feat).
  TORCH_ARG(std::vector<std::string>, names) = std::vector<std::string>({"ce"});
  TORCH_ARG(double, ce_weight) = 1.0;
  TORCH_ARG(double, ce_epsilon) = 0.1;
  TORCH_ARG(double, triplet_weight) = 1.0;
  TORCH_ARG(TripletOptions, triplet);
  TORCH_ARG(double, center_weight) = 0.0005;
  /// Identities (for the center loss).
  TORCH_ARG(int64_t, num_classes) = 0;
  /// Width of global_feat (for the center loss).
  TORCH_ARG(int64_t, feature_dim) = 0;
};

/// Value of the objective on one batch. Every value stays on the device (0-d tensors): reading
/// one back (`.item()`) would stall a GPU, so the trainer accumulates them and reads the means
/// once per log period.
struct LossResult {
  /// Weighted sum of the terms: what is back-propagated.
  torch::Tensor total;
  /// Each term's unweighted value, by name ("ce", "triplet", "center"), detached.
  std::vector<std::pair<std::string, torch::Tensor>> terms;
  /// Diagnostics: "accuracy" (with ce), "triplet_active" (fraction of active triplets).
  std::vector<std::pair<std::string, torch::Tensor>> stats;
};

/// Weighted sum of named loss terms. A module because the center loss owns parameters (the
/// centres), which the trainer optimises with their own SGD.
class LossSetImpl : public torch::nn::Module {
 public:
  explicit LossSetImpl(const LossSetOptions& options);
  LossResult forward(const models::ReidOutput& output, const torch::Tensor& targets);
  /// The center loss, or empty when not used.
  CenterLoss center() const { return center_; }
  const LossSetOptions& options() const { return options_; }

 private:
  LossSetOptions options_;
  bool ce_ = false, triplet_ = false;
  CenterLoss center_{nullptr};
};
TORCH_MODULE(LossSet);

}  // namespace reid::losses
