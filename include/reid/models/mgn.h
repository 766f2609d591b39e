#pragma once
/// @file
/// MGN, the Multiple Granularity Network (Wang et al., "Learning Discriminative Features with
/// Multiple Granularities for Person Re-Identification", ACM MM 2018): a ResNet-50 shared up to
/// layer3's first block, then three branches with their own copy of the rest of layer3 and of
/// layer4 (global branch: layer4 stride 2; part branches: stride 1): a global feature per branch,
/// and the part branches' maps cut into 2 and 3 horizontal stripes. Each of the 8 pooled features
/// is reduced to 256-d (1x1 convolution + BN + ReLU) and classified; the three global reduced
/// features are the triplet embeddings, and the test feature is the 8 reductions concatenated.
/// ReidOutput: `embeddings` the 3 global reduced features, `class_logits` the 8 classifiers'
/// logits (both by output_names(), the global branch's named "global"); `feature` the
/// concatenation.

#include <string>
#include <utility>
#include <vector>

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>

#include "reid/models/model.h"
#include "reid/models/norm.h"

namespace reid::models {

/// The rows [begin, end) of each of `parts` horizontal stripes of a map `rows` high: the bins of
/// adaptive pooling to `parts` x 1, [floor(i rows / parts), ceil((i + 1) rows / parts)).
std::vector<std::pair<int64_t, int64_t>> stripe_rows(int64_t rows, int64_t parts);

/// Options of MGN.
struct MGNOptions {
  /// Bottleneck blocks per ResNet stage (ResNet-50: 3, 4, 6, 3; layer3 needs at least 2: its
  /// first block is shared, the rest is each branch's own).
  TORCH_ARG(std::vector<int64_t>, layers) = std::vector<int64_t>({3, 4, 6, 3});
  /// Width of each reduced feature.
  TORCH_ARG(int64_t, reduction_dim) = 256;
  /// Stripes of the part branches (one branch per entry).
  TORCH_ARG(std::vector<int64_t>, parts) = std::vector<int64_t>({2, 3});
  /// IBN-a in the trunk and layer3 (as resnet50_ibn_a).
  TORCH_ARG(bool, ibn) = false;
  /// Head: identities, pooling of the global features and stripes (avg, max, GeM), classifier
  /// kind and its margin parameters. The neck options are not used (MGN's neck is the reduction).
  TORCH_ARG(HeadOptions, head);
};

/// MGN on ResNet-50. Module names: the trunk as torchvision's ResNet-50 (conv1, bn1, layer1,
/// layer2, layer3 holding block 0 only), then per branch b1 (global), b2, b3 (parts) a list of
/// [rest of layer3, layer4] as in fast-reid; reductions `reduction.<i>` and classifiers
/// `classifier.<i>` in the order of `output_names()`. A torchvision or fast-reid ResNet-50 state
/// dict loads into the trunk and every branch (adapt_state_dict()).
class MGNImpl : public ReidModelImpl {
 public:
  explicit MGNImpl(const MGNOptions& options, const std::string& name = "mgn_resnet50");
  ReidOutput forward(const torch::Tensor& images, const torch::Tensor& targets = {},
                     const torch::Tensor& cameras = {}) override;
  /// The global branch's layer4 map.
  torch::Tensor featuremaps(const torch::Tensor& images) override;
  int64_t feature_dim() const override;
  const HeadOptions& head_options() const override { return options.head(); }
  std::vector<NamedWidth> embedding_dims() const override;
  void adapt_state_dict(std::map<std::string, torch::Tensor>& state) const override;
  /// Names of the 8 reduced features, in order: "global", "part2_global", "part3_global",
  /// "part2_1", "part2_2", "part3_1", "part3_2", "part3_3" (for parts = {2, 3}).
  const std::vector<std::string>& output_names() const { return names_; }
  MGNOptions options;

 private:
  torch::Tensor trunk(const torch::Tensor& images);
  torch::nn::Conv2d conv1_{nullptr};
  BatchNorm2d bn1_{nullptr};
  torch::nn::MaxPool2d maxpool_{nullptr};
  torch::nn::Sequential layer1_{nullptr}, layer2_{nullptr}, layer3_{nullptr};
  // Per branch: the rest of layer3 and layer4 (modules b<i>.0 and b<i>.1).
  std::vector<std::pair<torch::nn::Sequential, torch::nn::Sequential>> branches_;
  GlobalPooling pool_{nullptr};
  std::vector<torch::nn::Sequential> reductions_;
  std::vector<Classifier> classifiers_;
  std::vector<std::string> names_;
};

}  // namespace reid::models
