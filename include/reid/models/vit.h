#pragma once
/// @file
/// Vision Transformer backbones (Dosovitskiy et al., ICLR 2021) for ReID, as TransReID (He et
/// al., ICCV 2021) uses them: pre-norm blocks (LayerNorm, multi-head self-attention through
/// at::scaled_dot_product_attention, an MLP with exact GELU), a class token, learned position
/// embeddings for the input size the model is built for, stochastic depth (drop-path), and a
/// patch stride that may be smaller than the patch (overlapping patches: stride 12 at 256 x 128
/// gives 21 x 10 patches). The class token after the final LayerNorm goes through the shared
/// head (BNNeck, classifier), so every loss term works unchanged.
///
/// TransReID's two modules are options (He et al., ICCV 2021, sections 3.2-3.3):
/// - SIE, the side-information embedding: a learned embedding per camera [cameras, 1, D], scaled
///   by lambda (3.0) and added to every token with the position embeddings. The camera ids come
///   with the batch (ReidModelImpl::forward's `cameras`). Camera-agnostic use (the Embedder, an
///   exported model, a record whose camera is unknown: camid < 0) adds the mean of the camera
///   embeddings instead.
/// - JPM, the jigsaw patch module: the last block and the final LayerNorm are duplicated as a
///   global branch `b1` and a local branch `b2` (both start from the last block's weights). The
///   global branch sees every token; the patch tokens of the shared trunk are rearranged
///   (jpm_rearrange()) and cut into k groups, each fed to `b2` with the class token, giving k
///   local features. Each feature has its BNNeck (`bottleneck`, `bottleneck_<i>`) and classifier
///   (`classifier`, `classifier_<i>`); the loss terms act on all of them with the global feature
///   weighted k (ReidOutput::weights), i.e. 0.5 global + 0.5 mean of the locals, as TransReID's
///   loss. The test feature is the global feature concatenated with each local one scaled 1/k.
///
/// Parameter names are timm's (`cls_token`, `pos_embed`, `patch_embed.proj`, `blocks.<i>.norm1`,
/// `blocks.<i>.attn.qkv`, `blocks.<i>.attn.proj`, `blocks.<i>.norm2`, `blocks.<i>.mlp.fc1`,
/// `blocks.<i>.mlp.fc2`, `norm`). adapt_state_dict() also takes torchvision's `vit_b_16` names,
/// drops ImageNet classifiers and resizes position embeddings of another grid bilinearly (the
/// class token's entry is kept as it is).

#include <map>
#include <string>
#include <vector>

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include "reid/models/model.h"

namespace reid::models {

/// Options of a ViT.
struct ViTOptions {
  /// Token width D (ViT-B: 768, ViT-S/DeiT-S: 384).
  TORCH_ARG(int64_t, dim) = 768;
  /// Transformer blocks.
  TORCH_ARG(int64_t, depth) = 12;
  /// Attention heads (D must divide by it).
  TORCH_ARG(int64_t, heads) = 12;
  /// Hidden width of each block's MLP.
  TORCH_ARG(int64_t, mlp_dim) = 3072;
  /// Patch size and the stride between patches (stride < patch: overlapping patches).
  TORCH_ARG(int64_t, patch) = 16;
  TORCH_ARG(int64_t, stride) = 16;
  /// Input size the position embeddings are made for.
  TORCH_ARG(int64_t, height) = ModelOptions().height();
  TORCH_ARG(int64_t, width) = ModelOptions().width();
  /// Stochastic depth: drop rate of the last block's residual branches, rising linearly from 0
  /// at the first block.
  TORCH_ARG(double, drop_path) = ModelOptions().drop_path();
  /// LayerNorm epsilon (1e-6 in timm and torchvision).
  TORCH_ARG(double, eps) = 1e-6;
  /// Head: identities, neck, classifier (pooling acts on the class token, a 1 x 1 map).
  TORCH_ARG(HeadOptions, head);
  /// SIE: cameras (0: no SIE) and the coefficient lambda.
  TORCH_ARG(int64_t, cameras) = ModelOptions().cameras();
  TORCH_ARG(double, sie_coefficient) = ModelOptions().sie_coefficient();
  /// JPM: on/off, shift m, shuffle groups and local features k.
  TORCH_ARG(bool, jpm) = ModelOptions().jpm();
  TORCH_ARG(int64_t, jpm_shift) = ModelOptions().jpm_shift();
  TORCH_ARG(int64_t, jpm_shuffle_groups) = ModelOptions().jpm_shuffle_groups();
  TORCH_ARG(int64_t, jpm_groups) = ModelOptions().jpm_groups();
};

/// JPM's rearrangement of patch tokens [N, P, D] (class token excluded), as TransReID's
/// shuffle_unit: the shift puts patches m-1 .. P-1 before patches 0 .. m-2 (a rotation by m - 1:
/// its slice starts at token m of the sequence that holds the class token at 0); when the length
/// does not divide by `shuffle_groups` the second-to-last token is appended until it does; the
/// shuffle then reads the sequence as `shuffle_groups` rows and writes it column by column
/// (token j of the result is token (j % g) * L / g + j / g of the shifted one).
torch::Tensor jpm_rearrange(const torch::Tensor& patches, int64_t shift, int64_t shuffle_groups);

/// Patches along one side: floor((size - patch) / stride) + 1.
int64_t vit_patches(int64_t size, int64_t patch, int64_t stride);

/// Position embeddings [1, 1 + h * w, D] (class token first) resized to the grid `rows` x
/// `cols`: the grid part bilinearly (align_corners false, as TransReID and timm), the class
/// token's entry unchanged. `from_rows` x `from_cols` is the stored grid; 0 for a square one.
torch::Tensor resize_position_embedding(const torch::Tensor& embedding, int64_t rows, int64_t cols,
                                        int64_t from_rows = 0, int64_t from_cols = 0);

/// Multi-head self-attention: qkv projection, scaled dot-product attention, output projection.
class ViTAttentionImpl : public torch::nn::Module {
 public:
  ViTAttentionImpl(int64_t dim, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear qkv{nullptr}, proj{nullptr};

 private:
  int64_t heads_;
};
TORCH_MODULE(ViTAttention);

/// One pre-norm block: x + attn(norm1(x)), then x + mlp(norm2(x)), each residual branch
/// dropped per sample with probability `drop_path` in training.
class ViTBlockImpl : public torch::nn::Module {
 public:
  ViTBlockImpl(int64_t dim, int64_t heads, int64_t mlp_dim, double drop_path, double eps);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::Tensor drop(const torch::Tensor& branch) const;
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  ViTAttention attn_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
  double drop_path_;
};
TORCH_MODULE(ViTBlock);

/// A ViT with the shared ReID head on its class token.
class ViTImpl : public ReidModelImpl {
 public:
  explicit ViTImpl(const ViTOptions& options, const std::string& name = "vit_base_patch16");
  ReidOutput forward(const torch::Tensor& images, const torch::Tensor& targets = {},
                     const torch::Tensor& cameras = {}) override;
  /// The patch tokens after the final LayerNorm (JPM: of the global branch) as a map
  /// [N, D, rows, cols], camera-agnostic.
  torch::Tensor featuremaps(const torch::Tensor& images) override;
  int64_t feature_dim() const override;
  std::vector<NamedWidth> embedding_dims() const override;
  void adapt_state_dict(std::map<std::string, torch::Tensor>& state) const override;
  /// Patch grid (rows, cols) of the input size.
  std::pair<int64_t, int64_t> grid() const { return {rows_, cols_}; }
  ViTOptions options;

  torch::Tensor cls_token, pos_embed;
  /// SIE: [cameras, 1, D] (undefined without SIE).
  torch::Tensor sie_embed;

 private:
  /// Tokens after the shared blocks (all blocks, or all but the last with JPM), [N, 1 + P, D],
  /// before any final LayerNorm.
  torch::Tensor trunk(const torch::Tensor& images, const torch::Tensor& cameras);
  /// The SIE term added to the tokens: lambda * the embedding of each image's camera ([N, 1, D]),
  /// the mean embedding for unknown cameras (undefined tensor or camid < 0).
  torch::Tensor camera_embedding(const torch::Tensor& cameras, int64_t batch) const;
  /// A block followed by a LayerNorm (JPM's branches b1, b2).
  static torch::Tensor run_branch(torch::nn::ModuleList& branch, const torch::Tensor& x);
  torch::nn::Conv2d patch_embed_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::ModuleList b1_{nullptr}, b2_{nullptr};
  std::vector<ReidHead> local_heads_;
  int64_t rows_ = 0, cols_ = 0;
};

/// ViT-B/16 (D 768, 12 heads, MLP 3072) and ViT-S/16 (DeiT-S: D 384, 6 heads, MLP 1536), 12
/// blocks each, for the input size, patch stride and drop-path of `options`.
ViTOptions vit_options(const std::string& size, const ModelOptions& options);

}  // namespace reid::models
