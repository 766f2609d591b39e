#include "reid/models/vit.h"

#include <cmath>
#include <regex>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/utils/strings.h"

namespace reid::models {

int64_t vit_patches(int64_t size, int64_t patch, int64_t stride) {
  if (patch <= 0 || stride <= 0 || size < patch)
    throw Error("a ViT needs an input side >= its patch size and a positive stride (side " + std::to_string(size) +
                ", patch " + std::to_string(patch) + ", stride " + std::to_string(stride) + ")");
  return (size - patch) / stride + 1;
}

torch::Tensor resize_position_embedding(const torch::Tensor& embedding, int64_t rows, int64_t cols,
                                        int64_t from_rows, int64_t from_cols) {
  TORCH_CHECK(embedding.dim() == 3 && embedding.size(0) == 1 && embedding.size(1) >= 2,
              "position embeddings must be [1, 1 + tokens, D] (got ", embedding.sizes(), ")");
  const int64_t tokens = embedding.size(1) - 1, dim = embedding.size(2);
  if (from_rows <= 0 || from_cols <= 0) {
    from_rows = from_cols = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(tokens))));
    TORCH_CHECK(from_rows * from_cols == tokens, "position embeddings of ", tokens,
                " patches are not a square grid: give the stored grid");
  }
  TORCH_CHECK(from_rows * from_cols == tokens, "position embeddings hold ", tokens, " patches, not ", from_rows, " x ",
              from_cols);
  if (from_rows == rows && from_cols == cols) return embedding;
  const auto cls = embedding.narrow(1, 0, 1);
  auto grid = embedding.narrow(1, 1, tokens).reshape({1, from_rows, from_cols, dim}).permute({0, 3, 1, 2});
  grid = torch::nn::functional::interpolate(grid.to(torch::kFloat), torch::nn::functional::InterpolateFuncOptions()
                                                                       .size(std::vector<int64_t>{rows, cols})
                                                                       .mode(torch::kBilinear)
                                                                       .align_corners(false))
             .to(embedding.scalar_type());
  grid = grid.permute({0, 2, 3, 1}).reshape({1, rows * cols, dim});
  return torch::cat({cls, grid}, 1);
}

// ---- blocks -------------------------------------------------------------------------------------

namespace {
// Normal(0, std) truncated to +-2 std, drawn by inverting the CDF (timm's initialisation).
void truncated_normal(torch::Tensor& t, double std) {
  torch::NoGradGuard no_grad;
  const double low = std::erf(-2.0 / std::sqrt(2.0)), high = std::erf(2.0 / std::sqrt(2.0));
  t.uniform_(low, high).erfinv_().mul_(std * std::sqrt(2.0));
}

void init_linear(torch::nn::Linear& linear) {
  torch::NoGradGuard no_grad;
  truncated_normal(linear->weight, 0.02);
  if (linear->bias.defined()) linear->bias.zero_();
}
}  // namespace

ViTAttentionImpl::ViTAttentionImpl(int64_t dim, int64_t heads) : heads_(heads) {
  if (heads <= 0 || dim % heads != 0)
    throw Error("a ViT's width (" + std::to_string(dim) + ") must divide by its heads (" + std::to_string(heads) + ")");
  qkv = register_module("qkv", torch::nn::Linear(dim, 3 * dim));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
  init_linear(qkv);
  init_linear(proj);
}

torch::Tensor ViTAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t tokens = x.size(1), dim = x.size(2);
  // [N, L, 3, heads, head_dim] -> three [N, heads, L, head_dim]. The batch dimension stays -1
  // so that a traced model takes any batch size.
  const auto qkv_heads = qkv->forward(x).reshape({-1, tokens, 3, heads_, dim / heads_}).permute({2, 0, 3, 1, 4});
  const auto out = at::scaled_dot_product_attention(qkv_heads.select(0, 0), qkv_heads.select(0, 1), qkv_heads.select(0, 2));
  return proj->forward(out.transpose(1, 2).reshape({-1, tokens, dim}));
}

ViTBlockImpl::ViTBlockImpl(int64_t dim, int64_t heads, int64_t mlp_dim, double drop_path, double eps)
    : drop_path_(drop_path) {
  const auto norm = torch::nn::LayerNormOptions({dim}).eps(eps);
  norm1_ = register_module("norm1", torch::nn::LayerNorm(norm));
  attn_ = register_module("attn", ViTAttention(dim, heads));
  norm2_ = register_module("norm2", torch::nn::LayerNorm(norm));
  auto mlp = register_module("mlp", std::make_shared<torch::nn::Module>("Mlp"));
  fc1_ = mlp->register_module("fc1", torch::nn::Linear(dim, mlp_dim));
  fc2_ = mlp->register_module("fc2", torch::nn::Linear(mlp_dim, dim));
  init_linear(fc1_);
  init_linear(fc2_);
}

torch::Tensor ViTBlockImpl::drop(const torch::Tensor& branch) const {
  if (!is_training() || drop_path_ <= 0.0) return branch;
  const double keep = 1.0 - drop_path_;
  // One draw per sample: the whole residual branch is kept (scaled by 1/keep) or dropped.
  const auto mask = torch::empty({branch.size(0), 1, 1}, branch.options()).bernoulli_(keep);
  return branch * mask / keep;
}

torch::Tensor ViTBlockImpl::forward(const torch::Tensor& x) {
  auto y = x + drop(attn_->forward(norm1_->forward(x)));
  return y + drop(fc2_->forward(torch::gelu(fc1_->forward(norm2_->forward(y)))));
}

// ---- model --------------------------------------------------------------------------------------

ViTImpl::ViTImpl(const ViTOptions& o, const std::string& name) : ReidModelImpl(name), options(o) {
  if (o.head().pooling() == Pooling::kGeM)
    throw Error(name + " pools nothing (its feature is the class token): use pooling avg (model.pooling)");
  rows_ = vit_patches(o.height(), o.patch(), o.stride());
  cols_ = vit_patches(o.width(), o.patch(), o.stride());
  patch_embed_ = torch::nn::Conv2d(torch::nn::Conv2dOptions(3, o.dim(), o.patch()).stride(o.stride()));
  auto patch_embed = register_module("patch_embed", std::make_shared<torch::nn::Module>("PatchEmbed"));
  patch_embed->register_module("proj", patch_embed_);
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, o.dim()}));
  pos_embed = register_parameter("pos_embed", torch::zeros({1, 1 + rows_ * cols_, o.dim()}));
  {
    torch::NoGradGuard no_grad;
    truncated_normal(cls_token, 0.02);
    truncated_normal(pos_embed, 0.02);
  }
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.depth(); ++i) {
    const double rate = o.depth() > 1 ? o.drop_path() * static_cast<double>(i) / static_cast<double>(o.depth() - 1) : 0.0;
    blocks_->push_back(ViTBlock(o.dim(), o.heads(), o.mlp_dim(), rate, o.eps()));
  }
  norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim()}).eps(o.eps())));
  head_.build(*this, o.dim(), o.head());
}

torch::Tensor ViTImpl::tokens(const torch::Tensor& images) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == 3, "expected images [N, 3, H, W] (got ", images.sizes(), ")");
  const int64_t rows = vit_patches(images.size(2), options.patch(), options.stride());
  const int64_t cols = vit_patches(images.size(3), options.patch(), options.stride());
  if (rows != rows_ || cols != cols_)
    throw Error(name() + " was built for " + std::to_string(options.height()) + " x " + std::to_string(options.width()) +
                " images (" + std::to_string(rows_) + " x " + std::to_string(cols_) + " patches); these are " +
                std::to_string(images.size(2)) + " x " + std::to_string(images.size(3)) +
                ": build it for this size (data.height, data.width)");
  auto x = patch_embed_->forward(images).flatten(2).transpose(1, 2);  // [N, rows * cols, D]
  // expand_as, not expand(N, ...): a traced model must not freeze the batch size.
  x = torch::cat({cls_token.expand_as(x.narrow(1, 0, 1)), x}, 1) + pos_embed;
  for (const auto& block : *blocks_) x = block->as<ViTBlock>()->forward(x);
  return norm_->forward(x);
}

torch::Tensor ViTImpl::featuremaps(const torch::Tensor& images) {
  const auto x = tokens(images);
  return x.narrow(1, 1, rows_ * cols_).transpose(1, 2).reshape({-1, options.dim(), rows_, cols_});
}

ReidOutput ViTImpl::forward(const torch::Tensor& images, const torch::Tensor& targets) {
  const auto x = tokens(images);
  // The class token as a 1 x 1 map: the head's pooling leaves it as it is.
  return head_.forward(x.select(1, 0).unsqueeze(-1).unsqueeze(-1), targets, is_training());
}

void ViTImpl::adapt_state_dict(std::map<std::string, torch::Tensor>& state) const {
  std::map<std::string, torch::Tensor> adapted;
  static const std::regex layer(R"(^encoder\.layers\.encoder_layer_(\d+)\.(.*)$)");
  static const std::map<std::string, std::string> in_layer = {
      {"ln_1.", "norm1."},
      {"ln_2.", "norm2."},
      {"self_attention.in_proj_", "attn.qkv."},
      {"self_attention.out_proj.", "attn.proj."},
      {"mlp.0.", "mlp.fc1."},
      {"mlp.3.", "mlp.fc2."},
      {"mlp.linear_1.", "mlp.fc1."},
      {"mlp.linear_2.", "mlp.fc2."},
  };
  for (auto& [key, value] : state) {
    std::string name = key;
    std::smatch m;
    if (name == "class_token") {
      name = "cls_token";
    } else if (name == "encoder.pos_embedding") {
      name = "pos_embed";
    } else if (utils::starts_with(name, "conv_proj.")) {
      name = "patch_embed.proj." + name.substr(10);
    } else if (utils::starts_with(name, "encoder.ln.")) {
      name = "norm." + name.substr(11);
    } else if (std::regex_match(name, m, layer)) {
      std::string rest = m[2];
      for (const auto& [from, to] : in_layer)
        if (utils::starts_with(rest, from)) {
          rest = to + rest.substr(from.size());
          break;
        }
      name = "blocks." + std::string(m[1]) + "." + rest;
    } else if (utils::starts_with(name, "heads.") || utils::starts_with(name, "head.") ||
               utils::starts_with(name, "fc_norm.") || name == "dist_token" || utils::starts_with(name, "head_dist.")) {
      continue;  // ImageNet classifiers (torchvision's heads, timm's head, DeiT's distillation head)
    }
    adapted[name] = value;
  }
  if (auto it = adapted.find("pos_embed"); it != adapted.end() && it->second.dim() == 3 &&
                                           it->second.size(1) != 1 + rows_ * cols_) {
    const int64_t stored = it->second.size(1) - 1;
    const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(stored))));
    if (side * side != stored)
      throw Error("pos_embed holds " + std::to_string(stored) +
                  " patch positions, not a square grid: cannot resize it to " + std::to_string(rows_) + " x " +
                  std::to_string(cols_));
    it->second = resize_position_embedding(it->second, rows_, cols_);
  }
  state = std::move(adapted);
}

ViTOptions vit_options(const std::string& size, const ModelOptions& options) {
  ViTOptions o;
  if (size == "small") o.dim(384).heads(6).mlp_dim(1536);
  o.depth(12)
      .patch(16)
      .stride(options.patch_stride() > 0 ? options.patch_stride() : 16)
      .height(options.height())
      .width(options.width())
      .drop_path(options.drop_path())
      .head(options.head());
  return o;
}

}  // namespace reid::models
