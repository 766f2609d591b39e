#include "reid/deploy/extract.h"

#include <torch/torch.h>

#include "reid/data/loader.h"

namespace reid::deploy {

eval::FeatureSet extract_features(models::ReidModelImpl& model, const data::RecordList& records,
                            const data::Transform& transform, const ExtractOptions& options) {
  TORCH_CHECK(options.batch_size > 0, "batch size must be positive");
  const bool was_training = model.is_training();
  model.eval();
  data::LoaderOptions loader_options;
  loader_options.workers = options.workers;
  loader_options.prefetch = std::max(2, 2 * options.workers);
  loader_options.pin_memory = options.device.is_cuda();
  loader_options.max_image_pixels = options.max_image_pixels;
  data::DataLoader loader(records, transform, loader_options);
  std::vector<std::vector<int64_t>> batches;
  const int64_t n = static_cast<int64_t>(records->size());
  for (int64_t start = 0; start < n; start += options.batch_size) {
    std::vector<int64_t> batch;
    for (int64_t i = start; i < std::min(n, start + options.batch_size); ++i) batch.push_back(i);
    batches.push_back(std::move(batch));
  }
  loader.start(std::move(batches), 0);
  std::vector<torch::Tensor> features;
  eval::FeatureSet set;
  std::vector<int64_t> pids, camids;
  {
    torch::NoGradGuard no_grad;
    while (auto batch = loader.next()) {
      auto images = batch->images.to(options.device, options.dtype, /*non_blocking=*/true);
      if (options.channels_last) images = images.contiguous(at::MemoryFormat::ChannelsLast);
      const auto cameras = options.camera_ids ? batch->camids.to(options.device) : torch::Tensor();
      auto f = model.forward(images, {}, cameras).feature;
      if (options.flip) f = (f + model.forward(images.flip({3}), {}, cameras).feature) / 2.0;
      features.push_back(f.to(torch::kCPU, torch::kFloat));
      for (int64_t index : batch->indices) {
        const auto& record = (*records)[static_cast<std::size_t>(index)];
        pids.push_back(record.pid);
        camids.push_back(record.camid);
        set.paths.push_back(record.path);
      }
    }
  }
  model.train(was_training);
  set.features = features.empty() ? torch::empty({0, model.feature_dim()}) : torch::cat(features);
  set.pids = torch::tensor(pids, torch::kLong);
  set.camids = torch::tensor(camids, torch::kLong);
  return set;
}

}  // namespace reid::deploy
