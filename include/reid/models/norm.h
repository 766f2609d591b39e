#pragma once
/// @file
/// Batch norms that can synchronise their statistics over the processes of a data-parallel job
/// (model.sync_bn), which small per-process P x K batches need. They compute what LibTorch's
/// BatchNorm1d/2d compute (same options, same parameter and buffer names, so state dicts are
/// unchanged), with one addition: once a SyncGroup is attached, training-mode batches are normalised with
/// the mean and variance of the whole global batch, and the backward pass reduces its two
/// per-channel sums over the processes too. Without a group they are exactly LibTorch's layer.
///
/// Networks that should support synchronized BN build their norms from these classes; the
/// built-in ones all do. convert_sync_batchnorm() refuses a model that still holds a plain
/// torch::nn::BatchNorm, naming the module. (They are their own modules rather than subclasses
/// of LibTorch's: LibTorch does not export everything a subclass needs.)

#include <memory>
#include <string>
#include <vector>

#include <ostream>

#include <torch/nn/cloneable.h>
#include <torch/nn/options/batchnorm.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

namespace reid::models {

/// What synchronized batch norm needs from the process topology (implemented by
/// engine::Distributed). Both calls are collective: every process makes them in the same order.
class SyncGroup {
 public:
  virtual ~SyncGroup() = default;
  /// Every process's tensor (same shape everywhere), in rank order.
  virtual std::vector<torch::Tensor> all_gather(const torch::Tensor& tensor) = 0;
  /// Sum over processes.
  virtual torch::Tensor all_reduce(const torch::Tensor& tensor) = 0;
};

/// Shared part of the synchronisable batch norms.
class SyncableNorm {
 public:
  virtual ~SyncableNorm() = default;
  /// Attaches (or, with nullptr, detaches) the group; it must outlive the module's use.
  void set_sync_group(SyncGroup* group) { group_ = group; }
  SyncGroup* sync_group() const { return group_; }

 protected:
  SyncGroup* group_ = nullptr;
};

/// What the synchronisable batch norms share: LibTorch's parameters and buffers under LibTorch's
/// names (weight, bias, running_mean, running_var, num_batches_tracked), its options, and its
/// forward computation when no group is attached.
template <class Derived>
class SyncableBatchNormImpl : public torch::nn::Cloneable<Derived>, public SyncableNorm {
 public:
  explicit SyncableBatchNormImpl(const torch::nn::BatchNormOptions& options) : options(options) { reset(); }
  void reset() override;
  /// Running statistics back to mean 0, variance 1, no batches seen.
  void reset_running_stats();
  /// Weight 1, bias 0, and reset_running_stats().
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;

  torch::nn::BatchNormOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 protected:
  torch::Tensor normalize(const torch::Tensor& input);
};

/// Batch norm over [N, C] or [N, C, L] that can synchronise over processes.
class BatchNorm1dImpl : public SyncableBatchNormImpl<BatchNorm1dImpl> {
 public:
  using SyncableBatchNormImpl<BatchNorm1dImpl>::SyncableBatchNormImpl;
  explicit BatchNorm1dImpl(int64_t features) : BatchNorm1dImpl(torch::nn::BatchNormOptions(features)) {}
  torch::Tensor forward(const torch::Tensor& input);
};
TORCH_MODULE(BatchNorm1d);

/// Batch norm over [N, C, H, W] that can synchronise over processes.
class BatchNorm2dImpl : public SyncableBatchNormImpl<BatchNorm2dImpl> {
 public:
  using SyncableBatchNormImpl<BatchNorm2dImpl>::SyncableBatchNormImpl;
  explicit BatchNorm2dImpl(int64_t features) : BatchNorm2dImpl(torch::nn::BatchNormOptions(features)) {}
  torch::Tensor forward(const torch::Tensor& input);
};
TORCH_MODULE(BatchNorm2d);

/// Batch norm of `input` ([N, C, ...]) with the statistics of the global batch across `group`
/// (training mode): updates the running statistics like torch::nn::BatchNorm and returns the
/// normalised tensor. Gradients flow to input, weight and bias; weight/bias gradients are this
/// process's share (the gradient reducer sums them over processes).
torch::Tensor sync_batch_norm(const torch::Tensor& input, torch::nn::BatchNormOptions options,
                              const torch::Tensor& weight, const torch::Tensor& bias,
                              torch::Tensor running_mean, torch::Tensor running_var,
                              torch::Tensor num_batches_tracked, SyncGroup& group);

/// Attaches `group` to every synchronisable batch norm in `module` (nullptr detaches) and
/// returns how many there are. Throws reid::ConfigError (key model.sync_bn) naming the first
/// plain torch::nn::BatchNorm1d/2d/3d found, which cannot synchronise.
int convert_sync_batchnorm(torch::nn::Module& module, SyncGroup* group);

}  // namespace reid::models
