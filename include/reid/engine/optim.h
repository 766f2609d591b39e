#pragma once
/// @file
/// Optimisers with parameter groups, and the learning-rate schedule.

#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

namespace reid::engine {

/// Options of build_optimizer().
struct OptimizerOptions {
  /// adam, amsgrad or sgd.
  std::string name = "adam";
  double lr = 0.00035;
  double weight_decay = 0.0005;
  /// No weight decay for normalisation weights and for biases.
  bool no_decay_norm_bias = false;
  /// Learning-rate factor of bias parameters.
  double bias_lr_factor = 1.0;
  double momentum = 0.9;
  bool nesterov = false;
  double beta1 = 0.9;
  double beta2 = 0.999;
};

/// An optimiser and the base learning rate of each of its parameter groups.
struct Optimizer {
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<double> base_lrs;
  /// Sets every group's rate to its base rate x `factor`.
  void set_lr_factor(double factor);
  /// The first group's current rate.
  double lr() const;
};

/// Builds the optimiser over the trainable parameters of `module` (those with requires_grad at
/// call time, plus those frozen only for freeze-then-open: pass them all; parameters that never
/// train, like BNNeck's frozen bias, are left out by `exclude`). Parameters are grouped by
/// (is bias, is normalisation) to apply bias_lr_factor and no_decay_norm_bias.
Optimizer build_optimizer(const torch::nn::Module& module, const OptimizerOptions& options,
                          const std::vector<torch::Tensor>& exclude = {});

/// Options of the learning-rate schedule (epoch-based, as in torchreid and BoT).
struct ScheduleOptions {
  /// multistep, cosine or constant.
  std::string name = "multistep";
  std::vector<int> milestones = {40, 70};
  double gamma = 0.1;
  int flat_epochs = 0;
  /// cosine: final rate as a fraction of the base rate.
  double min_factor = 0.0;
  int warmup_epochs = 0;
  double warmup_factor = 0.01;
  int max_epochs = 60;
};

/// Factor (of the base rate) for `epoch` (0-based): linear warmup from warmup_factor to 1 over
/// the first warmup_epochs (BoT), then multistep decay (gamma per milestone passed) or cosine
/// decay from the end of flat_epochs to max_epochs.
double lr_factor(const ScheduleOptions& options, int epoch);

}  // namespace reid::engine
