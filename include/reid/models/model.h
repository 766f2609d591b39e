#pragma once
/// @file
/// The ReID model interface, the options every network takes, and the model registry.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "reid/core/registry.h"
#include "reid/models/heads.h"
#include "reid/models/output.h"

namespace reid::models {

/// Options every registered network takes (fields that do not apply to a network are ignored:
/// `last_stride` by OSNet, `streams` and `feature_dim` by ResNet).
struct ModelOptions {
  /// Head: pooling, neck, classifier and number of identities.
  TORCH_ARG(HeadOptions, head);
  /// ResNet: stride of the last stage (1 or 2).
  TORCH_ARG(int64_t, last_stride) = 1;
  /// OSNet: streams per omni-scale block.
  TORCH_ARG(int64_t, streams) = 4;
  /// OSNet: width of the fc embedding (0: none).
  TORCH_ARG(int64_t, feature_dim) = 512;
  /// Input size (ViT: the grid its position embeddings are made for).
  TORCH_ARG(int64_t, height) = 256;
  TORCH_ARG(int64_t, width) = 128;
  /// ViT: stride between patches (0: the patch size; TransReID: 12 for 16-pixel patches).
  TORCH_ARG(int64_t, patch_stride) = 0;
  /// ViT: stochastic depth rate of the last block.
  TORCH_ARG(double, drop_path) = 0.1;
  /// ViT: cameras of TransReID's side-information embedding (SIE; 0: none). The training set's
  /// camera count when model.sie is on.
  TORCH_ARG(int64_t, cameras) = 0;
  /// ViT: SIE coefficient lambda (TransReID: 3.0).
  TORCH_ARG(double, sie_coefficient) = 3.0;
  /// ViT: TransReID's jigsaw patch module (JPM): the last block duplicated as a local branch fed
  /// shifted and shuffled patch groups.
  TORCH_ARG(bool, jpm) = false;
  /// JPM: shift m, shuffle groups, local features k (TransReID: 5, 2, 4).
  TORCH_ARG(int64_t, jpm_shift) = 5;
  TORCH_ARG(int64_t, jpm_shuffle_groups) = 2;
  TORCH_ARG(int64_t, jpm_groups) = 4;
};

/// Base class of every ReID network: a backbone producing a feature map, and the shared head
/// (pooling -> embedding -> neck -> classifier) registered on the same module so that parameter
/// names are flat and match the Python implementations.
class ReidModelImpl : public torch::nn::Module {
 public:
  /// [N, 3, H, W] images -> ReidOutput. `targets` (int64 [N]) are only used by margin
  /// classifiers in training. `cameras` (int64 [N], may be undefined) are the images' camera
  /// ids, used by models with a camera embedding (a ViT with SIE); others ignore them. In eval
  /// mode only the features are computed.
  virtual ReidOutput forward(const torch::Tensor& images, const torch::Tensor& targets = {},
                             const torch::Tensor& cameras = {});
  /// The backbone's feature map, [N, C, h, w].
  virtual torch::Tensor featuremaps(const torch::Tensor& images) = 0;
  /// The test feature of a batch (eval mode, no gradient): what retrieval uses.
  torch::Tensor extract_features(const torch::Tensor& images);
  /// Width of the test feature.
  virtual int64_t feature_dim() const { return head_.feature_dim(); }
  /// The head's options.
  virtual const HeadOptions& head_options() const { return head_.options(); }
  /// The training embeddings (ReidOutput::embeddings) by name and width: what loss terms with
  /// per-feature parameters (the center loss) are built for. One "global" feature by default.
  virtual std::vector<NamedWidth> embedding_dims() const { return {{"global", head_.feature_dim()}}; }
  /// Rewrites a state dict of another layout (e.g. a plain ResNet-50's) into this model's names
  /// before load_weights() copies it by name; the default leaves it as it is.
  virtual void adapt_state_dict(std::map<std::string, torch::Tensor>& state) const { (void)state; }

 protected:
  explicit ReidModelImpl(std::string name) : torch::nn::Module(std::move(name)) {}
  ReidHead head_;
};

/// Shared handle to any ReID network.
using ReidModel = std::shared_ptr<ReidModelImpl>;

/// Registry of networks by name.
using ModelRegistry = Registry<ReidModel(const ModelOptions&)>;

/// Adds the built-in networks: osnet_x1_0, osnet_x0_75, osnet_x0_5, osnet_x0_25,
/// osnet_ibn_x1_0, osnet_ain_x1_0, osnet_ain_x0_75, osnet_ain_x0_5, osnet_ain_x0_25, resnet50, resnet50_ibn_a, resnet50_nl (AGW's ResNet-50 with non-local
/// blocks), mgn_resnet50 (MGN), vit_base_patch16, vit_small_patch16.
void register_builtin_models(ModelRegistry& registry);

/// A registry holding the built-in networks (built once; copy it to add your own).
const ModelRegistry& builtin_models();

/// Parameter count of `module`, optionally leaving out parameters whose name starts with
/// `exclude_prefix` (e.g. "classifier").
int64_t count_parameters(const torch::nn::Module& module, const std::string& exclude_prefix = "");

/// Stores the 4-d parameters (convolution weights) of `module` channels-last. With channels-last
/// input, oneDNN on CPU (and cuDNN on GPU) then runs convolutions and batch norms without
/// converting layouts at every layer: OSNet trains ~1.4x faster on CPU (docs/benchmarks.md).
void to_channels_last(torch::nn::Module& module);

}  // namespace reid::models
