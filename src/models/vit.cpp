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

torch::Tensor jpm_rearrange(const torch::Tensor& patches, int64_t shift, int64_t shuffle_groups) {
  TORCH_CHECK(patches.dim() == 3, "JPM rearranges patch tokens [N, P, D] (got ", patches.sizes(), ")");
  const int64_t count = patches.size(1);
  if (shift < 1 || shift > count)
    throw Error("JPM's shift (model.jpm_shift) must be in [1, " + std::to_string(count) + "] for " +
                std::to_string(count) + " patches (got " + std::to_string(shift) + ")");
  if (shuffle_groups < 1 || shuffle_groups > count)
    throw Error("JPM's shuffle groups (model.jpm_shuffle_groups) must be in [1, " + std::to_string(count) +
                "] (got " + std::to_string(shuffle_groups) + ")");
  auto x = patches;
  if (shift > 1) x = torch::cat({x.narrow(1, shift - 1, count - shift + 1), x.narrow(1, 0, shift - 1)}, 1);
  while (x.size(1) % shuffle_groups != 0) x = torch::cat({x, x.narrow(1, x.size(1) - 2, 1)}, 1);
  const int64_t length = x.size(1), dim = x.size(2);
  return x.reshape({-1, shuffle_groups, length / shuffle_groups, dim}).transpose(1, 2).reshape({-1, length, dim});
}

// ---- model --------------------------------------------------------------------------------------

ViTImpl::ViTImpl(const ViTOptions& o, const std::string& name) : ReidModelImpl(name), options(o) {
  if (o.head().pooling() == Pooling::kGeM)
    throw Error(name + " pools nothing (its feature is the class token): use pooling avg (model.pooling)");
  if (o.cameras() < 0) throw Error("a camera embedding needs a positive number of cameras (got " + std::to_string(o.cameras()) + ")");
  if (o.jpm() && o.depth() < 2) throw Error("JPM duplicates the last block of a ViT with at least 2 blocks");
  rows_ = vit_patches(o.height(), o.patch(), o.stride());
  cols_ = vit_patches(o.width(), o.patch(), o.stride());
  if (o.jpm()) {
    const int64_t patches = rows_ * cols_;
    if (o.jpm_groups() < 1 || o.jpm_groups() > patches)
      throw Error("JPM's local features (model.jpm_groups) must be in [1, " + std::to_string(patches) + "] for " +
                  std::to_string(patches) + " patches (got " + std::to_string(o.jpm_groups()) + ")");
    jpm_rearrange(torch::zeros({1, patches, 1}), o.jpm_shift(), o.jpm_shuffle_groups());  // checks shift and groups
  }
  patch_embed_ = torch::nn::Conv2d(torch::nn::Conv2dOptions(3, o.dim(), o.patch()).stride(o.stride()));
  auto patch_embed = register_module("patch_embed", std::make_shared<torch::nn::Module>("PatchEmbed"));
  patch_embed->register_module("proj", patch_embed_);
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, o.dim()}));
  pos_embed = register_parameter("pos_embed", torch::zeros({1, 1 + rows_ * cols_, o.dim()}));
  {
    torch::NoGradGuard no_grad;
    truncated_normal(cls_token, 0.02);
    truncated_normal(pos_embed, 0.02);
    if (o.cameras() > 0) {
      sie_embed = register_parameter("sie_embed", torch::zeros({o.cameras(), 1, o.dim()}));
      truncated_normal(sie_embed, 0.02);
    }
  }
  const auto rate = [&](int64_t i) {
    return o.depth() > 1 ? o.drop_path() * static_cast<double>(i) / static_cast<double>(o.depth() - 1) : 0.0;
  };
  const auto norm = torch::nn::LayerNormOptions({o.dim()}).eps(o.eps());
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  // With JPM the last block exists twice, as b1 and b2, and the shared trunk stops before it.
  const int64_t shared = o.jpm() ? o.depth() - 1 : o.depth();
  for (int64_t i = 0; i < shared; ++i) blocks_->push_back(ViTBlock(o.dim(), o.heads(), o.mlp_dim(), rate(i), o.eps()));
  if (!o.jpm()) {
    norm_ = register_module("norm", torch::nn::LayerNorm(norm));
    head_.build(*this, o.dim(), o.head());
    return;
  }
  for (auto* branch : {&b1_, &b2_}) {
    *branch = register_module(branch == &b1_ ? "b1" : "b2", torch::nn::ModuleList());
    (*branch)->push_back(ViTBlock(o.dim(), o.heads(), o.mlp_dim(), rate(o.depth() - 1), o.eps()));
    (*branch)->push_back(torch::nn::LayerNorm(norm));
  }
  // The local branch starts as a copy of the global one (TransReID deep-copies the last block).
  {
    torch::NoGradGuard no_grad;
    const auto from = b1_->named_parameters();
    for (auto& p : b2_->named_parameters()) p.value().copy_(from[p.key()]);
  }
  head_.build(*this, o.dim(), o.head());
  local_heads_.resize(static_cast<std::size_t>(o.jpm_groups()));
  for (std::size_t i = 0; i < local_heads_.size(); ++i)
    local_heads_[i].build(*this, o.dim(), o.head(), {}, 0, "_" + std::to_string(i + 1));
}

torch::Tensor ViTImpl::camera_embedding(const torch::Tensor& cameras, int64_t batch) const {
  const int64_t count = sie_embed.size(0);
  const auto mean = sie_embed.mean(0, /*keepdim=*/true);  // [1, 1, D]
  if (!cameras.defined()) return options.sie_coefficient() * mean;
  TORCH_CHECK(cameras.dim() == 1 && cameras.size(0) == batch, "camera ids must be [N] for ", batch, " images (got ",
              cameras.sizes(), ")");
  const auto ids = cameras.to(sie_embed.device(), torch::kLong);
  if (ids.numel() > 0) {
    const int64_t largest = ids.max().item<int64_t>();
    if (largest >= count)
      throw Error("camera id " + std::to_string(largest) + " is outside the " + std::to_string(count) +
                  " cameras of the SIE embedding (model.sie): the model was trained on " + std::to_string(count) +
                  " cameras; test camera-agnostic (test.camera_ids: false) on another camera set");
  }
  // Row `count` is the mean: unknown cameras (camid < 0) take it.
  const auto table = torch::cat({sie_embed, mean}, 0);
  return options.sie_coefficient() * table.index_select(0, torch::where(ids < 0, torch::full_like(ids, count), ids));
}

torch::Tensor ViTImpl::trunk(const torch::Tensor& images, const torch::Tensor& cameras) {
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
  if (sie_embed.defined()) x = x + camera_embedding(cameras, images.size(0)).to(x.scalar_type());
  for (const auto& block : *blocks_) x = block->as<ViTBlock>()->forward(x);
  return x;
}

torch::Tensor ViTImpl::run_branch(torch::nn::ModuleList& branch, const torch::Tensor& x) {
  return branch[1]->as<torch::nn::LayerNorm>()->forward(branch[0]->as<ViTBlock>()->forward(x));
}

torch::Tensor ViTImpl::featuremaps(const torch::Tensor& images) {
  auto x = trunk(images, {});
  x = options.jpm() ? run_branch(b1_, x) : norm_->forward(x);
  return x.narrow(1, 1, rows_ * cols_).transpose(1, 2).reshape({-1, options.dim(), rows_, cols_});
}

int64_t ViTImpl::feature_dim() const {
  return options.dim() * (1 + (options.jpm() ? options.jpm_groups() : 0));
}

std::vector<NamedWidth> ViTImpl::embedding_dims() const {
  std::vector<NamedWidth> dims = {{"global", options.dim()}};
  if (options.jpm())
    for (int64_t i = 1; i <= options.jpm_groups(); ++i) dims.emplace_back("local_" + std::to_string(i), options.dim());
  return dims;
}

ReidOutput ViTImpl::forward(const torch::Tensor& images, const torch::Tensor& targets, const torch::Tensor& cameras) {
  const auto x = trunk(images, cameras);
  const auto as_map = [](const torch::Tensor& token) { return token.unsqueeze(-1).unsqueeze(-1); };
  if (!options.jpm()) {
    // The class token as a 1 x 1 map: the head's pooling leaves it as it is.
    return head_.forward(as_map(norm_->forward(x).select(1, 0)), targets, is_training());
  }
  auto out = head_.forward(as_map(run_branch(b1_, x).select(1, 0)), targets, is_training());
  // Local branch: the k groups of rearranged patches, each behind the class token, as one batch
  // of k * N sequences through b2 (every operation in a block acts per sequence).
  const int64_t k = options.jpm_groups(), patches = rows_ * cols_, length = patches / k;
  const auto cls = x.narrow(1, 0, 1);
  const auto shuffled = jpm_rearrange(x.narrow(1, 1, patches), options.jpm_shift(), options.jpm_shuffle_groups());
  std::vector<torch::Tensor> groups;
  for (int64_t i = 0; i < k; ++i) groups.push_back(torch::cat({cls, shuffled.narrow(1, i * length, length)}, 1));
  const auto locals = run_branch(b2_, torch::cat(groups, 0)).select(1, 0).chunk(k, 0);
  std::vector<torch::Tensor> test_parts = {out.feature};
  for (int64_t i = 0; i < k; ++i) {
    const auto name = "local_" + std::to_string(i + 1);
    auto local = local_heads_[static_cast<std::size_t>(i)].forward(as_map(locals[static_cast<std::size_t>(i)]), targets,
                                                                   is_training());
    test_parts.push_back(local.feature / static_cast<double>(k));
    out.embeddings.emplace_back(name, local.embedding());
    if (local.logits().defined()) out.class_logits.emplace_back(name, local.logits());
  }
  out.feature = torch::cat(test_parts, 1);
  if (is_training()) out.weights = {{"global", static_cast<double>(k)}};
  return out;
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
    // TransReID's checkpoints hold the backbone under "base.".
    std::string name = utils::starts_with(key, "base.") ? key.substr(5) : key;
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
  if (options.jpm()) {
    // A plain ViT's last block and final norm start both JPM branches (TransReID copies them);
    // a JPM checkpoint's own b1 / b2 win, and the shared trunk has no last block or norm.
    const std::string last = "blocks." + std::to_string(options.depth() - 1) + ".";
    std::map<std::string, torch::Tensor> copies;
    for (const auto& [key, value] : adapted) {
      std::string rest;
      if (utils::starts_with(key, last)) rest = "0." + key.substr(last.size());
      else if (utils::starts_with(key, "norm.")) rest = "1." + key.substr(5);
      else continue;
      for (const char* branch : {"b1.", "b2."})
        if (!adapted.count(branch + rest)) copies[branch + rest] = value;
    }
    for (auto it = adapted.begin(); it != adapted.end();)
      it = utils::starts_with(it->first, last) || utils::starts_with(it->first, "norm.") ? adapted.erase(it) : std::next(it);
    adapted.insert(copies.begin(), copies.end());
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
      .head(options.head())
      .cameras(options.cameras())
      .sie_coefficient(options.sie_coefficient())
      .jpm(options.jpm())
      .jpm_shift(options.jpm_shift())
      .jpm_shuffle_groups(options.jpm_shuffle_groups())
      .jpm_groups(options.jpm_groups());
  return o;
}

}  // namespace reid::models
