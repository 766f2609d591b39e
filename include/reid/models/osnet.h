#pragma once
/// @file
/// OSNet: Omni-Scale Network (Zhou, Yang, Cavallaro, Xiang, "Omni-Scale Feature Learning for
/// Person Re-Identification", ICCV 2019), with its building blocks as reusable modules, and
/// OSNet-AIN (Zhou et al., "Learning Generalisable Omni-Scale Representations for Person
/// Re-Identification", TPAMI 2021): instance normalisation in conv1 and inside the residual
/// branch of the blocks its architecture search chose (conv2: both, conv3: the second, conv4:
/// the first), as torchreid's osnet_ain_* define them.
/// Submodule and parameter names equal torchreid's, so its state dicts load by name.

#include <functional>
#include <string>
#include <vector>

#include "reid/models/norm.h"
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/instancenorm.h>
#include <torch/nn/modules/pooling.h>

#include "reid/models/model.h"

namespace reid::models {

/// Options of ConvBN.
struct ConvBNOptions {
  ConvBNOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(int64_t, kernel_size);
  TORCH_ARG(int64_t, stride) = 1;
  TORCH_ARG(int64_t, padding) = 0;
  TORCH_ARG(int64_t, groups) = 1;
  /// Apply ReLU after the normalisation.
  TORCH_ARG(bool, relu) = true;
  /// Instance norm (affine) instead of batch norm.
  TORCH_ARG(bool, instance_norm) = false;
  /// Normalise at all (false: a bare convolution, torchreid's Conv1x1Linear(bn=False)).
  TORCH_ARG(bool, norm) = true;
};

/// Bias-free convolution + batch (or instance) norm + optional ReLU; submodules `conv`, `bn`
/// (torchreid's ConvLayer, Conv1x1 and Conv1x1Linear).
class ConvBNImpl : public torch::nn::Module {
 public:
  explicit ConvBNImpl(const ConvBNOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv{nullptr};
  BatchNorm2d bn{nullptr};
  torch::nn::InstanceNorm2d in{nullptr};

 private:
  bool relu_;
};
TORCH_MODULE(ConvBN);

/// Lite 3x3: pointwise 1x1 conv -> depthwise 3x3 conv -> BN -> ReLU (submodules `conv1`,
/// `conv2`, `bn`).
class LiteConv3x3Impl : public torch::nn::Module {
 public:
  LiteConv3x3Impl(int64_t in_channels, int64_t out_channels);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::Conv2d conv2{nullptr};
  BatchNorm2d bn{nullptr};
};
TORCH_MODULE(LiteConv3x3);

/// Unified aggregation gate: GAP -> 1x1 FC (reduction 16) -> ReLU -> 1x1 FC -> sigmoid, giving a
/// channel-wise weight computed from the input itself; the input is returned scaled by it. One
/// gate is shared by all streams of a block (submodules `fc1`, `fc2`).
class AggregationGateImpl : public torch::nn::Module {
 public:
  explicit AggregationGateImpl(int64_t channels, int64_t reduction = 16);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d fc1{nullptr};
  torch::nn::Conv2d fc2{nullptr};
};
TORCH_MODULE(AggregationGate);

/// Options of OSBlock.
struct OSBlockOptions {
  OSBlockOptions(int64_t in_channels, int64_t out_channels)
      : in_channels_(in_channels), out_channels_(out_channels) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  /// Streams T; stream t stacks t Lite 3x3 layers (receptive fields 3, 5, 7, 9 for T = 4).
  TORCH_ARG(int64_t, streams) = ModelOptions().streams();
  /// The 1x1 reduction divides the channels by this.
  TORCH_ARG(int64_t, bottleneck_reduction) = 4;
  /// Instance norm after the residual sum (the IBN variant).
  TORCH_ARG(bool, instance_norm) = false;
  /// AIN: instance norm inside the residual branch, after conv3 (which then has no BN), before
  /// the sum (torchreid's OSBlockINin).
  TORCH_ARG(bool, residual_instance_norm) = false;
  /// Streams as torchreid's osnet_ain names them: a list `conv2.<t>.layers.<i>` instead of
  /// `conv2a`, `conv2b.<i>`, ...
  TORCH_ARG(bool, stream_list) = false;
};

/// Omni-scale residual bottleneck: 1x1 reduce -> T streams -> shared aggregation gate -> sum ->
/// 1x1 expand + BN, plus the (projected when widths differ) identity, then ReLU. Submodules
/// `conv1`, `conv2a` (a Lite 3x3), `conv2b`, `conv2c`, ... (Sequentials) or, in the AIN layout,
/// `conv2.<t>.layers.<i>`, `gate`, `conv3`, `downsample`, `IN`.
class OSBlockImpl : public torch::nn::Module {
 public:
  explicit OSBlockImpl(const OSBlockOptions& options);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  ConvBN conv1_{nullptr};
  std::vector<std::function<torch::Tensor(const torch::Tensor&)>> streams_;
  AggregationGate gate_{nullptr};
  ConvBN conv3_{nullptr};
  ConvBN downsample_{nullptr};
  torch::nn::InstanceNorm2d instance_norm_{nullptr};
  bool residual_instance_norm_ = false;
};
TORCH_MODULE(OSBlock);

/// Stage transition: 1x1 ConvBN (`0`) then 2x2 average pooling (`1`), halving the resolution.
class TransitionImpl : public torch::nn::Module {
 public:
  explicit TransitionImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  ConvBN conv_{nullptr};
  torch::nn::AvgPool2d pool_{nullptr};
};
TORCH_MODULE(Transition);

/// Options of the OSNet network.
struct OSNetOptions {
  /// Widths of conv1 and the conv2, conv3, conv4 stages (x1.0: 64, 256, 384, 512).
  TORCH_ARG(std::vector<int64_t>, channels) = std::vector<int64_t>({64, 256, 384, 512});
  /// Omni-scale blocks in conv2, conv3, conv4.
  TORCH_ARG(std::vector<int64_t>, layers) = std::vector<int64_t>({2, 2, 2});
  /// Streams per block.
  TORCH_ARG(int64_t, streams) = ModelOptions().streams();
  /// Width of the fc embedding (0: none; the feature is then conv5's pooled output).
  TORCH_ARG(int64_t, feature_dim) = ModelOptions().feature_dim();
  /// IBN variant: instance norm in conv1 and after the conv2 blocks (torchreid osnet_ibn_x1_0).
  TORCH_ARG(bool, instance_norm) = false;
  /// AIN variant (torchreid osnet_ain_*): instance norm in conv1 and inside the residual branch
  /// of the blocks `ain_blocks` marks; transitions are the modules `pool2`, `pool3`.
  TORCH_ARG(bool, ain) = false;
  /// AIN: per stage, which blocks have instance norm in their residual branch (TPAMI 2021's
  /// searched architecture: {1, 1}, {0, 1}, {1, 0}).
  TORCH_ARG(std::vector<std::vector<bool>>, ain_blocks) =
      std::vector<std::vector<bool>>({{true, true}, {false, true}, {true, false}});
  /// Head.
  TORCH_ARG(HeadOptions, head);
};

/// Options of an OSNet whose widths are x1.0's scaled by `width` (0.75, 0.5, 0.25), from the
/// generic model options.
OSNetOptions osnet_options(double width, bool instance_norm, const ModelOptions& model);

/// Options of OSNet-AIN at `width` (1.0, 0.75, 0.5, 0.25).
OSNetOptions osnet_ain_options(double width, const ModelOptions& model);

/// OSNet: conv1 (7x7/2) + maxpool, conv2..conv4 (omni-scale blocks; conv2 and conv3 end with a
/// 1x1 conv + 2x2 average-pool transition), conv5 (1x1), global pooling, fc (Linear + BN + ReLU)
/// and the classifier.
class OSNetImpl : public ReidModelImpl {
 public:
  explicit OSNetImpl(const OSNetOptions& options, const std::string& name = "osnet");
  torch::Tensor featuremaps(const torch::Tensor& images) override;
  OSNetOptions options;

 private:
  ConvBN conv1_{nullptr};
  torch::nn::MaxPool2d maxpool_{nullptr};
  torch::nn::Sequential conv2_{nullptr}, conv3_{nullptr}, conv4_{nullptr};
  Transition pool2_{nullptr}, pool3_{nullptr};  // AIN only
  ConvBN conv5_{nullptr};
  torch::nn::Sequential fc_{nullptr};
};

}  // namespace reid::models
