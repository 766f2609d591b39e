#include "reid/deploy/embedder.h"

#include <filesystem>

#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <caffe2/utils/threadpool/thread_pool_guard.h>
#include <opencv2/imgproc.hpp>
#include <torch/csrc/jit/passes/xnnpack_rewrite.h>
#include <torch/torch.h>

#include "reid/config/loader.h"
#include "reid/config/options.h"
#include "reid/core/error.h"
#include "reid/deploy/export.h"
#include "reid/deploy/extract.h"
#include "reid/deploy/model.h"
#include "reid/models/temporal.h"

namespace fs = std::filesystem;

namespace reid::deploy {
namespace {

// An 8-bit BGR view of crop `index`, converting grey and BGRA crops.
cv::Mat as_bgr(const cv::Mat& crop, std::size_t index) {
  if (crop.empty()) throw Error("crop " + std::to_string(index) + " is empty");
  if (crop.depth() != CV_8U)
    throw Error("crop " + std::to_string(index) + " is not 8-bit (OpenCV depth " + std::to_string(crop.depth()) +
                "); convert it with cv::Mat::convertTo first");
  cv::Mat bgr;
  switch (crop.channels()) {
    case 3: return crop;
    case 1: cv::cvtColor(crop, bgr, cv::COLOR_GRAY2BGR); return bgr;
    case 4: cv::cvtColor(crop, bgr, cv::COLOR_BGRA2BGR); return bgr;
    default:
      throw Error("crop " + std::to_string(index) + " has " + std::to_string(crop.channels()) +
                  " channels (expected BGR, grey or BGRA)");
  }
}

// Crops per forward pass when the user leaves it to us. On the CPU a pass whose activations
// spill out of the caches runs slower per crop than a small one (2 cores, crops/s in passes of
// 2 / 4 / 8 / 32: OSNet x1.0 86 / 109 / 56 / 20, x0.25 - / 288 / 257 / 166): the largest
// activation is kept within ~8 MiB, at most 8 crops. A GPU wants large passes.
int64_t automatic_batch_size(const TracedModel& traced, const EmbedderOptions& options) {
  int64_t largest = 1;  // elements per image of the largest activation
  for (const auto* node : traced.graph->nodes())
    for (const auto* output : node->outputs()) {
      const auto type = output->type()->cast<c10::TensorType>();
      const auto sizes = type ? type->sizes().concrete_sizes() : c10::nullopt;
      if (!sizes || sizes->empty() || node->kind() == torch::jit::prim::Constant) continue;
      int64_t per_image = 1;
      for (std::size_t d = 1; d < sizes->size(); ++d) per_image *= (*sizes)[d];
      largest = std::max(largest, per_image);
    }
  const double bytes = static_cast<double>(largest) * static_cast<double>(c10::elementSize(options.dtype));
  if (options.device.is_cuda()) return std::clamp<int64_t>(static_cast<int64_t>(1024.0 * 1024 * 1024 / bytes), 1, 128);
  return std::clamp<int64_t>(static_cast<int64_t>(8.0 * 1024 * 1024 / bytes), 1, 8);
}

// The test-time form of a transform: resize + normalise, no augmentation.
data::Transform test_time(data::TransformOptions options) {
  options.augments.clear();
  return data::Transform(std::move(options));
}

}  // namespace

Embedder Embedder::from_run(const std::string& run_dir, const EmbedderOptions& options,
                            const models::ModelRegistry& models) {
  const fs::path dir(run_dir);
  const fs::path config_path = dir / "config.yaml";
  if (!fs::is_regular_file(config_path))
    throw IOError(run_dir, "is not a training run's output folder (no config.yaml)");
  const std::string weights = trained_weights(run_dir);
  if (weights.empty()) throw IOError(run_dir, "holds no trained weights (model_best.pt or model_final.pt)");
  return Embedder(config::load_config(config_path.string()), weights, options, models);
}

Embedder::Embedder(const Config& config, const std::string& weights, const EmbedderOptions& options,
                   const models::ModelRegistry& models)
    : Embedder(*load_for_tracing(config, weights, models), config::transform_options(config, /*train=*/false), options) {}

Embedder::Embedder(models::ReidModelImpl& model, const data::TransformOptions& transform,
                   const EmbedderOptions& options)
    : options_(options), transform_(test_time(transform)) {
  if (options_.batch_size < 0) throw Error("embedder batch size must be positive, or 0 to choose (got " +
                                           std::to_string(options_.batch_size) + ")");
  TraceOptions trace;
  trace.height = transform_.options().height;
  trace.width = transform_.options().width;
  trace.fold_batchnorm = options_.fold_batchnorm;
  trace.device = options_.device;
  trace.dtype = options_.dtype;
  trace.channels_last = options_.channels_last;
  if (const auto* clip = dynamic_cast<const models::TemporalModelImpl*>(&model))
    if (clip->pooling() != models::TemporalPooling::kAvg)
      tracklet_error_ = "this clip model pools frames with " +
                        std::string(clip->pooling() == models::TemporalPooling::kMax ? "max" : "attention") +
                        " pooling, which is not a mean of per-frame features: embed its clips with "
                        "deploy::extract_features()";
  traced_ = trace_model(model, trace);
  batch_size_ = options_.batch_size > 0 ? options_.batch_size : automatic_batch_size(traced_, options_);
  const bool xnnpack = c10::Dispatcher::singleton().findSchema({"prepacked::conv2d_clamp_run", ""}).has_value();
  if (options_.xnnpack_single_crop && xnnpack && options_.device.is_cpu() && options_.dtype == torch::kFloat) {
    auto copy = traced_.module.clone();
    copy.eval();
    // Freezes the copy and replaces its convolutions (and linear layers) by XNNPACK's prepacked
    // operators, their weights packed once here.
    single_crop_ = torch::jit::optimizeForMobile(copy);
  }
}

torch::Tensor Embedder::preprocess(const std::vector<cv::Mat>& crops) const {
  const auto& o = transform_.options();
  const int64_t n = static_cast<int64_t>(crops.size()), plane = 3 * static_cast<int64_t>(o.height) * o.width;
  auto batch = torch::empty({n, 3, o.height, o.width});
  float* out = batch.data_ptr<float>();
  std::vector<cv::Mat> bgr(crops.size());
  for (std::size_t i = 0; i < crops.size(); ++i) bgr[i] = as_bgr(crops[i], i);  // errors before any work
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    data::Rng rng(0);  // unused: a test-time transform draws nothing
    for (int64_t i = begin; i < end; ++i) transform_.apply(bgr[static_cast<std::size_t>(i)], out + i * plane, rng);
  });
  return batch;
}

torch::Tensor Embedder::embed(const std::vector<cv::Mat>& crops) const {
  auto f = embed_raw(crops);
  if (options_.normalize) f = f / f.norm(2, 1, /*keepdim=*/true).clamp_min(1e-12);
  return f;
}

torch::Tensor Embedder::embed_tracklets(const std::vector<std::vector<cv::Mat>>& tracklets) const {
  if (!tracklet_error_.empty()) throw Error(tracklet_error_);
  std::vector<cv::Mat> frames;
  std::vector<int64_t> owner;
  for (std::size_t t = 0; t < tracklets.size(); ++t) {
    if (tracklets[t].empty()) throw Error("tracklet " + std::to_string(t) + " has no frames");
    for (const auto& frame : tracklets[t]) {
      frames.push_back(frame);
      owner.push_back(static_cast<int64_t>(t));
    }
  }
  if (frames.empty()) return torch::empty({0, feature_dim()});
  auto f = mean_by_owner(embed_raw(frames), owner, static_cast<int64_t>(tracklets.size()));
  if (options_.normalize) f = f / f.norm(2, 1, /*keepdim=*/true).clamp_min(1e-12);
  return f;
}

torch::Tensor Embedder::embed_tracklet(const std::vector<cv::Mat>& frames) const {
  if (frames.empty()) throw Error("a tracklet needs at least one frame");
  return embed_tracklets({frames})[0];
}

torch::Tensor Embedder::embed_raw(const std::vector<cv::Mat>& crops) const {
  if (crops.empty()) return torch::empty({0, feature_dim()});
  const auto images = preprocess(crops);
  torch::NoGradGuard no_grad;
  auto module = traced_.module;  // a handle: forward() is not const
  std::vector<torch::Tensor> features;
  for (int64_t start = 0; start < images.size(0); start += batch_size_) {
    auto x = images.narrow(0, start, std::min(batch_size_, images.size(0) - start));
    x = x.to(options_.device, options_.dtype, /*non_blocking=*/false);
    if (options_.channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    const auto forward = [&](const torch::Tensor& batch) {
      if (single_crop_ && batch.size(0) == 1) {
        // On this thread: XNNPACK's own thread pool would fight LibTorch's OpenMP threads.
        caffe2::_NoPThreadPoolGuard inline_xnnpack;
        auto single = *single_crop_;  // a handle: forward() is not const
        return single.forward({batch}).toTensor().to(torch::kFloat);
      }
      return module.forward({batch}).toTensor().to(torch::kFloat);
    };
    features.push_back(flip_averaged(forward, x, options_.flip).to(torch::kCPU));
  }
  return torch::cat(features);
}

torch::Tensor Embedder::embed(const cv::Mat& crop) const { return embed(std::vector<cv::Mat>{crop})[0]; }

}  // namespace reid::deploy
