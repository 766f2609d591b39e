#include "reid/deploy/extract.h"

#include <torch/torch.h>

#include "reid/data/loader.h"

namespace reid::deploy {

namespace {
// Dense protocol: every tracklet cut into clips of seq_len frames (each a record of its own),
// and the tracklet each clip comes from.
std::pair<data::RecordList, std::vector<int64_t>> all_clips(const std::vector<data::ImageRecord>& tracklets,
                                                            int64_t seq_len) {
  std::vector<data::ImageRecord> clips;
  std::vector<int64_t> owner;
  utils::Rng unused(0);
  for (std::size_t i = 0; i < tracklets.size(); ++i) {
    const auto& frames = *tracklets[i].frames;
    for (const auto& clip : data::sample_frames(static_cast<int64_t>(frames.size()), seq_len, data::FrameSampling::kAll, unused)) {
      auto paths = std::make_shared<std::vector<std::string>>();
      for (int64_t f : clip) paths->push_back(frames[static_cast<std::size_t>(f)]);
      clips.push_back({paths->front(), tracklets[i].pid, tracklets[i].camid, paths});
      owner.push_back(static_cast<int64_t>(i));
    }
  }
  return {data::make_record_list(std::move(clips)), owner};
}
}  // namespace

torch::Tensor flip_averaged(const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                            const torch::Tensor& images, bool flip) {
  auto f = forward(images);
  if (flip) f = (f + forward(images.flip({-1}))) / 2.0;
  return f;
}

torch::Tensor mean_by_owner(const torch::Tensor& features, const std::vector<int64_t>& owner, int64_t groups) {
  TORCH_CHECK(features.size(0) == static_cast<int64_t>(owner.size()), features.size(0), " rows for ", owner.size(),
              " owners");
  const auto index = torch::tensor(owner, torch::kLong);
  const auto sums = torch::zeros({groups, features.size(1)}, features.options()).index_add_(0, index, features);
  const auto counts = torch::zeros({groups}, features.options()).index_add_(0, index, torch::ones({index.size(0)}, features.options()));
  return sums / counts.unsqueeze(1);
}

eval::FeatureSet labelled_features(torch::Tensor features, const std::vector<data::ImageRecord>& records) {
  TORCH_CHECK(features.size(0) == static_cast<int64_t>(records.size()), "features of ", features.size(0),
              " records for ", records.size(), " records");
  eval::FeatureSet set;
  set.features = std::move(features);
  std::vector<int64_t> pids, camids;
  for (const auto& r : records) {
    pids.push_back(r.pid);
    camids.push_back(r.camid);
    set.paths.push_back(r.path);
  }
  set.pids = torch::tensor(pids, torch::kLong);
  set.camids = torch::tensor(camids, torch::kLong);
  return set;
}

eval::FeatureSet extract_features(models::ReidModelImpl& model, const data::RecordList& records,
                            const data::Transform& transform, const ExtractOptions& options) {
  TORCH_CHECK(options.batch_size > 0, "batch size must be positive");
  if (options.sampling == data::FrameSampling::kAll && data::is_video(*records)) {
    // Each clip's feature, then the mean over each tracklet's clips.
    auto [clips, owner] = all_clips(*records, options.seq_len);
    auto clip_options = options;
    clip_options.sampling = data::FrameSampling::kEvenly;  // a clip of exactly seq_len frames: all of them
    const auto per_clip = extract_features(model, clips, transform, clip_options);
    return labelled_features(mean_by_owner(per_clip.features, owner, static_cast<int64_t>(records->size())), *records);
  }
  const bool was_training = model.is_training();
  model.eval();
  data::LoaderOptions loader_options;
  loader_options.workers = options.workers;
  loader_options.prefetch = std::max(2, 2 * options.workers);
  loader_options.pin_memory = options.device.is_cuda();
  loader_options.max_image_pixels = options.max_image_pixels;
  loader_options.seq_len = options.seq_len;
  loader_options.sampling = options.sampling;
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
      if (options.channels_last && images.dim() == 4) images = images.contiguous(at::MemoryFormat::ChannelsLast);
      const auto cameras = options.camera_ids ? batch->camids.to(options.device) : torch::Tensor();
      const auto f = flip_averaged([&](const torch::Tensor& x) { return model.forward(x, {}, cameras).feature; },
                                   images, options.flip);
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
