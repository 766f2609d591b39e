#include "reid/eval/evaluator.h"

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/data/loader.h"
#include "reid/eval/npy.h"

namespace reid::eval {

FeatureSet load_feature_set(const std::string& features, const std::string& pids, const std::string& camids,
                            const std::string& paths) {
  FeatureSet set;
  set.features = read_features(features);
  set.pids = read_labels(pids, set.features.size(0));
  set.camids = read_labels(camids, set.features.size(0));
  if (!paths.empty()) {
    set.paths = read_npy_strings(paths);
    if (static_cast<int64_t>(set.paths.size()) != set.size())
      throw IOError(paths, "has " + std::to_string(set.paths.size()) + " paths but the features have " +
                               std::to_string(set.size()) + " rows");
  }
  return set;
}

void save_feature_set(const FeatureSet& set, const std::string& dir, const std::string& prefix) {
  const std::string base = dir + "/" + prefix;
  write_npy(base + "_features.npy", set.features);
  write_npy(base + "_pids.npy", set.pids);
  write_npy(base + "_camids.npy", set.camids);
  write_npy_strings(base + "_paths.npy", set.paths);
}

FeatureSet extract_features(models::ReidModelImpl& model, const data::RecordList& records,
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
  FeatureSet set;
  std::vector<int64_t> pids, camids;
  {
    torch::NoGradGuard no_grad;
    while (auto batch = loader.next()) {
      auto images = batch->images.to(options.device, options.dtype, /*non_blocking=*/true);
      if (options.channels_last) images = images.contiguous(at::MemoryFormat::ChannelsLast);
      auto f = model.forward(images).feature;
      if (options.flip) f = (f + model.forward(images.flip({3})).feature) / 2.0;
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

std::pair<torch::Tensor, torch::Tensor> prepare_features(const FeatureSet& query, const FeatureSet& gallery,
                                                         const RetrievalOptions& options) {
  auto q = query.features.to(torch::kFloat);
  auto g = gallery.features.to(torch::kFloat);
  if (options.normalize) {
    q = l2_normalize(q);
    g = l2_normalize(g);
  }
  if (options.query_expansion > 0) q = average_query_expansion(q, g, options.metric, options.query_expansion);
  return {q, g};
}

EvalResult evaluate_retrieval(const FeatureSet& query, const FeatureSet& gallery, const RetrievalOptions& options) {
  TORCH_CHECK(query.size() > 0 && gallery.size() > 0, "evaluation needs query and gallery features");
  const auto [q, g] = prepare_features(query, gallery, options);
  if (options.cuhk03_single_shot) {
    const auto d = options.rerank ? rerank(q, g, options.metric, options.rerank_options) : compute_distance(q, g, options.metric);
    return evaluate_cuhk03_single_shot(d, query.pids, gallery.pids, query.camids, gallery.camids, options.eval.max_rank,
                                       10, options.seed);
  }
  if (options.rerank) {
    KReciprocalReranker reranker(q, g, options.metric, options.rerank_options);
    return evaluate_streaming([&](int64_t b, int64_t e) { return reranker.rows(b, e); }, q.size(0), g.size(0),
                              query.pids, gallery.pids, query.camids, gallery.camids, options.eval);
  }
  return evaluate_features(q, g, query.pids, gallery.pids, query.camids, gallery.camids, options.metric, options.eval);
}

}  // namespace reid::eval
