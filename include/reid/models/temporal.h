#pragma once
/// @file
/// Video ReID models: any registered image network applied to every frame of a clip, its
/// per-frame features pooled over time, and the shared head (neck, classifier) on the pooled
/// feature. The output is the usual ReidOutput, so every loss term trains tracklet features
/// unchanged. Temporal average pooling over a ResNet-50 is the standard MARS baseline (Gao and
/// Nevatia, "Revisiting Temporal Modeling for Video-based Person ReID", 2018).

#include <map>
#include <string>

#include <torch/nn/modules/linear.h>

#include "reid/core/registry.h"
#include "reid/models/model.h"

namespace reid::models {

/// How per-frame features are pooled over time.
enum class TemporalPooling {
  /// Mean over the frames.
  kAvg,
  /// Element-wise maximum over the frames.
  kMax,
  /// Learned temporal attention: a score per frame (a linear map of its feature), softmax over
  /// the frames, the weighted sum. Initialised to equal weights (the mean).
  kAttention,
};

/// The temporal poolings by name: avg, max, attention.
const Registry<TemporalPooling()>& temporal_pooling_registry();

/// Parses a temporal pooling; throws reid::Error listing the valid names.
TemporalPooling parse_temporal_pooling(const std::string& name);

/// A network on clips. Input [N, T, 3, H, W] (T frames per clip; [N, 3, H, W] is one frame).
/// `backbone` is an image network built without classifier and neck: its per-frame feature is
/// its pooled (and, for OSNet, embedded) feature, the "global" embedding (a ViT's class token). Camera ids
/// ([N], one per clip) are given to every frame. Parameter names: the backbone's under
/// `backbone.`, `temporal_attention` (attention pooling), then the head's (`bottleneck`,
/// `classifier`). adapt_state_dict() puts an image model's state dict under `backbone.`.
class TemporalModelImpl : public ReidModelImpl {
 public:
  /// `head` gives the identities, neck and classifier on the pooled feature (its pooling is not
  /// used: frames are pooled by the backbone).
  TemporalModelImpl(ReidModel backbone, TemporalPooling pooling, const HeadOptions& head,
                    const std::string& name = "temporal");
  ReidOutput forward(const torch::Tensor& clips, const torch::Tensor& targets = {},
                     const torch::Tensor& cameras = {}) override;
  /// The backbone's feature maps of every frame, [N * T, C, h, w].
  torch::Tensor featuremaps(const torch::Tensor& clips) override;
  /// Per-frame features [N, T, D] -> [N, D].
  torch::Tensor pool(const torch::Tensor& frames);
  void adapt_state_dict(std::map<std::string, torch::Tensor>& state) const override;
  /// How the frames' features are pooled.
  TemporalPooling pooling() const { return pooling_; }

  ReidModel backbone;

 private:
  /// [N, T, 3, H, W] (or [N, 3, H, W]) -> [N * T, 3, H, W] and T.
  static std::pair<torch::Tensor, int64_t> frames_of(const torch::Tensor& clips);
  TemporalPooling pooling_;
  torch::nn::Linear attention_{nullptr};
};

/// Shared handle to a TemporalModelImpl.
using TemporalModel = std::shared_ptr<TemporalModelImpl>;

/// The registered image network `name` (from `registry`, with `options`' sizes and backbone
/// settings, and without classifier or neck) on clips with `pooling`; `options.head()` becomes
/// the clip model's head.
TemporalModel make_temporal_model(const std::string& name, const ModelOptions& options, TemporalPooling pooling,
                                  const ModelRegistry& registry = builtin_models());

}  // namespace reid::models
