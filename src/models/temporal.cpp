#include "reid/models/temporal.h"

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/utils/strings.h"

namespace reid::models {

const Registry<TemporalPooling()>& temporal_pooling_registry() {
  static const auto registry = [] {
    Registry<TemporalPooling()> r("temporal pooling");
    for (const auto& [name, kind] : std::vector<std::pair<std::string, TemporalPooling>>{
             {"avg", TemporalPooling::kAvg}, {"max", TemporalPooling::kMax}, {"attention", TemporalPooling::kAttention}})
      r.add(name, [kind = kind] { return kind; });
    return r;
  }();
  return registry;
}

TemporalPooling parse_temporal_pooling(const std::string& name) { return temporal_pooling_registry().create(name); }

TemporalModelImpl::TemporalModelImpl(ReidModel backbone_model, TemporalPooling pooling, const HeadOptions& head,
                                     const std::string& name)
    : ReidModelImpl(name), backbone(std::move(backbone_model)), pooling_(pooling) {
  if (!backbone) throw Error("a temporal model needs an image network");
  if (backbone->head_options().num_classes() > 0 || backbone->head_options().neck() != Neck::kNone)
    throw Error("the image network of a temporal model must have no classifier and no neck (the clip model has them)");
  register_module("backbone", backbone);
  const int64_t dim = backbone->feature_dim();
  if (pooling == TemporalPooling::kAttention) {
    attention_ = register_module("temporal_attention", torch::nn::Linear(dim, 1));
    torch::NoGradGuard no_grad;
    attention_->weight.zero_();  // equal scores: starts as the mean
    attention_->bias.zero_();
  }
  head_.build(*this, dim, HeadOptions(head).pooling(Pooling::kAvg));
}

std::pair<torch::Tensor, int64_t> TemporalModelImpl::frames_of(const torch::Tensor& clips) {
  if (clips.dim() == 4) return {clips, 1};
  TORCH_CHECK(clips.dim() == 5 && clips.size(2) == 3, "expected clips [N, T, 3, H, W] (got ", clips.sizes(), ")");
  return {clips.flatten(0, 1), clips.size(1)};
}

torch::Tensor TemporalModelImpl::pool(const torch::Tensor& frames) {
  TORCH_CHECK(frames.dim() == 3, "expected per-frame features [N, T, D] (got ", frames.sizes(), ")");
  switch (pooling_) {
    case TemporalPooling::kAvg:
      return frames.mean(1);
    case TemporalPooling::kMax:
      return std::get<0>(frames.max(1));
    case TemporalPooling::kAttention: {
      const auto weights = torch::softmax(attention_->forward(frames), 1);  // [N, T, 1]
      return (weights * frames).sum(1);
    }
  }
  TORCH_INTERNAL_ASSERT(false, "unhandled temporal pooling");
}

ReidOutput TemporalModelImpl::forward(const torch::Tensor& clips, const torch::Tensor& targets,
                                      const torch::Tensor& cameras) {
  const auto [frames, length] = frames_of(clips);
  const auto frame_cameras = cameras.defined() ? cameras.repeat_interleave(length) : torch::Tensor();
  const auto per_frame = backbone->forward(frames, {}, frame_cameras).embedding();  // [N * T, D]
  const auto pooled = pool(per_frame.view({-1, length, per_frame.size(1)}));
  return head_.forward(pooled.unsqueeze(-1).unsqueeze(-1), targets, is_training());
}

torch::Tensor TemporalModelImpl::featuremaps(const torch::Tensor& clips) {
  return backbone->featuremaps(frames_of(clips).first);
}

void TemporalModelImpl::adapt_state_dict(std::map<std::string, torch::Tensor>& state) const {
  // An image model's weights (no "backbone." key): the backbone adapts them, then they move
  // under "backbone."; its classifier and neck are left out (the clip model has its own).
  for (const auto& [key, value] : state)
    if (utils::starts_with(key, "backbone.")) return;
  backbone->adapt_state_dict(state);
  std::map<std::string, torch::Tensor> moved;
  for (auto& [key, value] : state) {
    if (utils::starts_with(key, "classifier") || utils::starts_with(key, "bottleneck")) continue;
    moved["backbone." + key] = value;
  }
  state = std::move(moved);
}

TemporalModel make_temporal_model(const std::string& name, const ModelOptions& options, TemporalPooling pooling,
                                  const ModelRegistry& registry) {
  auto image = ModelOptions(options).head(HeadOptions(options.head()).num_classes(0).neck(Neck::kNone));
  return std::make_shared<TemporalModelImpl>(registry.create(name, image), pooling, options.head(),
                                             "temporal_" + name);
}

}  // namespace reid::models
