#pragma once
/// @file
/// Embeddings of crops already in memory, for trackers and video pipelines (DeepSORT / BoT-SORT
/// style: detector boxes in, appearance features out). The crops go through exactly the test
/// transform of the model's config (resize, RGB, mean / std), are batched, and run through the
/// traced model with its batch norms folded into the convolutions.
///
///     auto embedder = reid::deploy::Embedder::from_run("output/osnet_x0_25_market1501_cpu");
///     torch::Tensor features = embedder.embed(crops);   // [N, D], rows of unit length
///     torch::Tensor similarity = features.mm(features.t());

#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <torch/types.h>

#include "reid/config/config.h"
#include "reid/data/transforms.h"
#include "reid/deploy/trace.h"
#include "reid/models/model.h"

namespace reid::deploy {

/// Options of Embedder.
struct EmbedderOptions {
  /// Where the model runs ("cpu", "cuda", "cuda:1").
  torch::Device device = torch::kCPU;
  /// float32, or float16 / bfloat16 on CUDA (features are returned as float32 either way).
  torch::ScalarType dtype = torch::kFloat;
  /// Crops per forward pass (larger lists are split). 0: chosen from the model's activation
  /// sizes: on the CPU at most 8, fewer for wide networks (large passes spill out of the caches:
  /// on 2 cores OSNet x1.0 embeds 5x more crops per second in passes of 4 than of 32); up to
  /// 128 on CUDA.
  int64_t batch_size = 0;
  /// Average each crop's feature with its mirror image's (as reid-test's test.flip).
  bool flip = config::TestConfig{}.flip;
  /// L2-normalise the features (cosine similarity is then a dot product).
  bool normalize = true;
  /// Fold batch norms into the preceding convolutions (features equal to the unfolded model's
  /// to ~1e-6 relative; faster).
  bool fold_batchnorm = TraceOptions{}.fold_batchnorm;
  /// Channels-last weights and inputs (default: on, the fast layout for oneDNN and cuDNN).
  bool channels_last = true;
  /// On the CPU in float32, run passes of a single crop (no flip) through XNNPACK's prepacked
  /// convolutions on the calling thread, when this LibTorch has XNNPACK. LibTorch's oneDNN
  /// depthwise convolution costs 40-110 us a call whatever its size, and OSNet has ~60 of them:
  /// one crop of OSNet x0.25 takes ~3.4 ms this way against ~7 ms (2 cores). Passes of several
  /// crops stay on oneDNN, which is faster there. Features agree to ~1e-7 relative.
  bool xnnpack_single_crop = true;
};

/// A trained model ready to embed crops. Thread-compatible: embed() may be called from several
/// threads at once (it holds no mutable state).
class Embedder {
 public:
  /// From a training run's output folder: its config.yaml and model_best.pt (model_final.pt when
  /// there is no best). Throws reid::IOError naming the folder when either is missing.
  static Embedder from_run(const std::string& run_dir, const EmbedderOptions& options = {},
                           const models::ModelRegistry& models = models::builtin_models());

  /// From a config (model and test transform) and a weights file: LibReID's, or a Python state
  /// dict (torch.save(model.state_dict()), torchreid / fast-reid checkpoints).
  Embedder(const Config& config, const std::string& weights, const EmbedderOptions& options = {},
           const models::ModelRegistry& models = models::builtin_models());

  /// From a model in memory (its weights are copied; the model is left as it was) and the test
  /// transform it was trained for.
  Embedder(models::ReidModelImpl& model, const data::TransformOptions& transform, const EmbedderOptions& options = {});

  /// Features of `crops` (8-bit BGR as OpenCV gives them, any size; grey and BGRA are converted):
  /// float32 [N, D] on the CPU. An empty or unsupported crop is a reid::Error naming its index.
  torch::Tensor embed(const std::vector<cv::Mat>& crops) const;

  /// Feature of one crop, [D].
  torch::Tensor embed(const cv::Mat& crop) const;

  /// Feature of a tracklet (a person's crops from one camera, in any number), [D]: the mean of
  /// its frames' features before normalisation. For a model trained on a video set with
  /// temporal average pooling (model.temporal_pooling avg, the default) this is the clip model's
  /// feature of all the frames, since its neck is affine at test time; an image model's tracklet
  /// feature is the common mean of frame features. A clip model with max or attention pooling is
  /// a reid::Error here (its pooling is not a mean): embed its clips with extract_features().
  torch::Tensor embed_tracklet(const std::vector<cv::Mat>& frames) const;

  /// embed_tracklet() of each tracklet: [N, D].
  torch::Tensor embed_tracklets(const std::vector<std::vector<cv::Mat>>& tracklets) const;

  /// The preprocessed batch embed() feeds the model: float32 [N, 3, H, W] on the CPU.
  torch::Tensor preprocess(const std::vector<cv::Mat>& crops) const;

  /// Width of the features.
  int64_t feature_dim() const { return traced_.feature_dim; }
  /// The test transform (input size, mean, std).
  const data::TransformOptions& transform() const { return transform_.options(); }
  const EmbedderOptions& options() const { return options_; }
  /// Crops per forward pass (options().batch_size, or the size chosen for 0).
  int64_t batch_size() const { return batch_size_; }
  /// The traced module that runs (e.g. to save it with save_torchscript()).
  const TracedModel& traced() const { return traced_; }
  /// True when single crops run through XNNPACK (see EmbedderOptions::xnnpack_single_crop).
  bool single_crop_xnnpack() const { return single_crop_.has_value(); }

 private:
  EmbedderOptions options_;
  data::Transform transform_;
  TracedModel traced_;
  std::optional<torch::jit::Module> single_crop_;  // traced_ with XNNPACK convolutions
  int64_t batch_size_ = 1;
  // Why tracklets cannot be embedded as a mean of frames (a clip model that does not average);
  // empty when they can.
  std::string tracklet_error_;

  // Features of `crops` before normalisation.
  torch::Tensor embed_raw(const std::vector<cv::Mat>& crops) const;
};

}  // namespace reid::deploy
