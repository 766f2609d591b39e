#pragma once
/// @file
/// ResNet-50 backbone for the BoT / BNNeck baseline (He et al., CVPR 2016; Luo et al., CVPRW
/// 2019), with torchvision's module names (conv1, bn1, layer1..layer4, downsample) so that
/// ImageNet weights saved from torchvision load by name, and the IBN-a variant (Pan et al.,
/// ECCV 2018).

#include <vector>

#include "reid/models/norm.h"
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/instancenorm.h>
#include <torch/nn/modules/pooling.h>

#include "reid/models/model.h"

namespace reid::models {

/// IBN: instance norm on the first half of the channels, batch norm on the rest (submodules
/// `IN`, `BN`, as in the IBN-Net release).
class IBNImpl : public torch::nn::Module {
 public:
  explicit IBNImpl(int64_t planes, double ratio = 0.5);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::InstanceNorm2d IN{nullptr};
  BatchNorm2d BN{nullptr};

 private:
  int64_t half_;
};
TORCH_MODULE(IBN);

/// ResNet bottleneck (torchvision v1.5: the stride sits on the 3x3 conv).
class BottleneckImpl : public torch::nn::Module {
 public:
  /// Expansion of the output width over `planes`.
  static constexpr int64_t kExpansion = 4;
  BottleneckImpl(int64_t in_planes, int64_t planes, int64_t stride, bool ibn);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  torch::nn::AnyModule bn1_;
  BatchNorm2d bn2_{nullptr}, bn3_{nullptr};
  torch::nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(Bottleneck);

/// Non-local block (Wang et al., CVPR 2018), the dot-product form AGW uses: with 1x1 convolutions
/// theta, phi, g to `channels / 2` (with bias), y = (theta(x)^T phi(x) / N) g(x) over the N = h*w
/// positions, and z = x + W(y), W a 1x1 convolution back to `channels` followed by a batch norm
/// initialised to zero (so a new block starts as the identity). Submodule names g, theta, phi,
/// W.0, W.1 as in fast-reid.
class NonLocalImpl : public torch::nn::Module {
 public:
  explicit NonLocalImpl(int64_t channels, int64_t reduction = 2);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  int64_t inter_;
  torch::nn::Conv2d g_{nullptr}, theta_{nullptr}, phi_{nullptr};
  torch::nn::Sequential w_{nullptr};
};
TORCH_MODULE(NonLocal);

/// A ResNet stage: `blocks` bottlenecks of width `planes` (x4 out), the first with `stride`;
/// `in_planes` is the input width and is updated to the output width.
torch::nn::Sequential resnet_stage(int64_t& in_planes, int64_t planes, int64_t blocks, int64_t stride, bool ibn);

/// torchvision's ResNet initialisation of every convolution (Kaiming normal, fan-out) and batch
/// norm (weight 1, bias 0) under `module`.
void init_resnet_weights(torch::nn::Module& module);

/// Options of the ResNet network.
struct ResNetOptions {
  /// Bottleneck blocks per stage (ResNet-50: 3, 4, 6, 3).
  TORCH_ARG(std::vector<int64_t>, layers) = std::vector<int64_t>({3, 4, 6, 3});
  /// Stride of layer4: 1 (BoT, 16x8 maps at 256x128) or 2 (ImageNet).
  TORCH_ARG(int64_t, last_stride) = ModelOptions().last_stride();
  /// IBN-a: IBN replaces bn1 in every block of layer1..layer3.
  TORCH_ARG(bool, ibn) = false;
  /// Non-local blocks after the last n blocks of layer1..layer4 (AGW: 0, 2, 3, 0), in modules
  /// NL_1..NL_4 (fast-reid's names).
  TORCH_ARG(std::vector<int64_t>, non_local) = std::vector<int64_t>({0, 0, 0, 0});
  /// Head.
  TORCH_ARG(HeadOptions, head);
};

/// ResNet-50 (or IBN-a) options from the generic model options; `non_local` adds AGW's
/// non-local blocks (2 in layer2, 3 in layer3).
ResNetOptions resnet50_options(bool ibn, const ModelOptions& model, bool non_local = false);

/// ResNet backbone + ReID head.
class ResNetImpl : public ReidModelImpl {
 public:
  explicit ResNetImpl(const ResNetOptions& options, const std::string& name = "resnet50");
  torch::Tensor featuremaps(const torch::Tensor& images) override;
  ResNetOptions options;

 private:
  torch::nn::Conv2d conv1_{nullptr};
  BatchNorm2d bn1_{nullptr};
  torch::nn::MaxPool2d maxpool_{nullptr};
  torch::nn::Sequential layer1_{nullptr}, layer2_{nullptr}, layer3_{nullptr}, layer4_{nullptr};
  // Per stage: the non-local blocks and the index of the block each follows.
  std::vector<std::vector<std::pair<int64_t, NonLocal>>> non_local_;
};

}  // namespace reid::models
