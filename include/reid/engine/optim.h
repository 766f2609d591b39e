#pragma once
/// @file
/// Optimisers with parameter groups, and the learning-rate schedule.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/optim/optimizer.h>

#include "reid/core/registry.h"
#include "reid/config/config.h"

namespace reid::engine {

/// Options of build_optimizer().
struct OptimizerOptions {
  /// adam, amsgrad or sgd.
  std::string name = config::SolverConfig{}.optimizer;
  double lr = config::SolverConfig{}.base_lr;
  double weight_decay = config::SolverConfig{}.weight_decay;
  /// No weight decay for normalisation weights and for biases.
  bool no_decay_norm_bias = config::SolverConfig{}.no_decay_norm_bias;
  /// Learning-rate factor of bias parameters.
  double bias_lr_factor = config::SolverConfig{}.bias_lr_factor;
  double momentum = config::SolverConfig{}.momentum;
  bool nesterov = config::SolverConfig{}.nesterov;
  double beta1 = config::SolverConfig{}.adam_beta1;
  double beta2 = config::SolverConfig{}.adam_beta2;
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

/// How a registered optimiser is built: the options of one parameter group (its learning rate
/// and weight decay), and the optimiser over the groups.
struct OptimizerKind {
  std::function<std::unique_ptr<torch::optim::OptimizerOptions>(double lr, double weight_decay,
                                                                 const OptimizerOptions& options)>
      group;
  std::function<std::unique_ptr<torch::optim::Optimizer>(std::vector<torch::optim::OptimizerParamGroup> groups,
                                                         const OptimizerOptions& options)>
      make;
};

/// Registry of optimisers by name (solver.optimizer).
using OptimizerRegistry = Registry<OptimizerKind()>;

/// The built-in optimisers: sgd, adam, amsgrad.
const OptimizerRegistry& builtin_optimizers();

/// Builds the optimiser over the trainable parameters of `module` (those with requires_grad at
/// call time, plus those frozen only for freeze-then-open: pass them all; parameters that never
/// train, like BNNeck's frozen bias, are left out by `exclude`). Parameters are grouped by
/// (is bias, is normalisation) to apply bias_lr_factor and no_decay_norm_bias.
/// The optimiser is looked up in `registry` (a ConfigError on solver.optimizer names the
/// registered ones).
Optimizer build_optimizer(const torch::nn::Module& module, const OptimizerOptions& options,
                          const std::vector<torch::Tensor>& exclude = {},
                          const OptimizerRegistry& registry = builtin_optimizers());

/// Options of the learning-rate schedule (epoch-based, as in torchreid and BoT).
struct ScheduleOptions {
  /// multistep, cosine or constant.
  std::string name = config::SolverConfig{}.scheduler;
  std::vector<int> milestones = config::SolverConfig{}.milestones;
  double gamma = config::SolverConfig{}.gamma;
  int flat_epochs = config::SolverConfig{}.flat_epochs;
  /// cosine: final rate as a fraction of the base rate.
  double min_factor = 0.0;
  int warmup_epochs = config::SolverConfig{}.warmup_epochs;
  double warmup_factor = config::SolverConfig{}.warmup_factor;
  int max_epochs = config::SolverConfig{}.max_epochs;
};

/// Registry of learning-rate schedules by name (solver.scheduler): each maps (options, epoch) to
/// the factor on the base rate before warmup.
using SchedulerRegistry = Registry<double(const ScheduleOptions&, int)>;

/// The built-in schedules: multistep, cosine, constant.
const SchedulerRegistry& builtin_schedulers();

/// Factor (of the base rate) for `epoch` (0-based): linear warmup from warmup_factor to 1 over
/// the first warmup_epochs (BoT), then multistep decay (gamma per milestone passed) or cosine
/// decay from the end of flat_epochs to max_epochs (or the registered schedule of that name in
/// `registry`).
double lr_factor(const ScheduleOptions& options, int epoch,
                 const SchedulerRegistry& registry = builtin_schedulers());

}  // namespace reid::engine

namespace reid::engine {

/// Scales the gradients of `parameters` so that their global L2 norm is at most `max_norm`,
/// without reading anything back to the host (LibTorch's clip_grad_norm_ returns the norm as a
/// double, which waits for the GPU at every step).
void clip_gradients(const std::vector<torch::Tensor>& parameters, double max_norm);

/// Dynamic loss scaling for float16 mixed precision, PyTorch's GradScaler algorithm: the loss is
/// multiplied by the scale before backward; after it the gradients are divided by it and checked
/// for inf/NaN (one flag read back per step: the step must be skipped or not); an overflowing
/// step is skipped and the scale multiplied by `backoff`, and after `interval` clean steps it is
/// multiplied by `growth`. A module so that checkpoints keep its state (buffers `scale` and
/// `growth_tracker`).
class LossScalerImpl : public torch::nn::Module {
 public:
  explicit LossScalerImpl(double init_scale = 65536.0, double growth = 2.0, double backoff = 0.5,
                          int64_t interval = 2000);
  /// loss x scale.
  torch::Tensor scale(const torch::Tensor& loss) const;
  /// Divides every defined gradient by the scale; true when all of them are finite.
  bool unscale(const std::vector<torch::Tensor>& parameters);
  /// After a step (`finite`) or a skipped one.
  void update(bool finite);
  double current() const;

 private:
  torch::Tensor scale_, tracker_;
  double growth_, backoff_;
  int64_t interval_;
};
TORCH_MODULE(LossScaler);

/// CUDA autocast to `dtype` for a scope when `enabled` (an exception cannot leave it on); the
/// autocast cache is cleared at the end.
class AutocastGuard {
 public:
  AutocastGuard(bool enabled, torch::ScalarType dtype);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_;
};

}  // namespace reid::engine
