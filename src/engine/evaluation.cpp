#include "reid/engine/evaluation.h"

#include <algorithm>
#include <filesystem>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/core/logging.h"
#include "reid/core/runtime.h"
#include "reid/eval/visualize.h"

namespace fs = std::filesystem;

namespace reid::engine {

eval::FeatureSet extract_features(models::ReidModelImpl& model, const data::RecordList& records,
                                  const data::Transform& transform, const deploy::ExtractOptions& options,
                                  Distributed& dist) {
  if (!dist.is_distributed()) return deploy::extract_features(model, records, transform, options);
  // Contiguous shards, so that concatenating them in rank order restores the record order.
  const int64_t n = static_cast<int64_t>(records->size()), world = dist.world_size(), rank = dist.rank();
  const int64_t begin = n * rank / world, end = n * (rank + 1) / world;
  const auto shard = data::make_record_list(
      std::vector<data::ImageRecord>(records->begin() + begin, records->begin() + end));
  auto part = deploy::extract_features(model, shard, transform, options);
  return deploy::labelled_features(dist.gather_rows(part.features.to(dist.device())).to(torch::kCPU), *records);
}

std::map<std::string, eval::EvalResult> evaluate_targets(models::ReidModelImpl& model,
                                                         const std::vector<data::DatasetSplits>& targets,
                                                         const EvaluationOptions& options,
                                                         const std::string& output_dir, Distributed* dist) {
  Distributed single(options.extract.device);
  Distributed& group = dist ? *dist : single;
  std::map<std::string, eval::EvalResult> results;
  const data::Transform transform(options.transform);
  for (const auto& target : targets) {
    const double start = monotonic_seconds();
    const auto query = extract_features(model, data::make_record_list(target.query), transform, options.extract, group);
    const auto gallery =
        extract_features(model, data::make_record_list(target.gallery), transform, options.extract, group);
    if (!group.is_main()) continue;
    const double extracted = monotonic_seconds();
    auto retrieval = options.retrieval;
    retrieval.cuhk03_single_shot = std::count(options.single_gallery_shot.begin(), options.single_gallery_shot.end(),
                                              target.name) > 0;
    const auto result = eval::evaluate_retrieval(query, gallery, retrieval);
    logger().info("{}: {} (features {:.1f}s, metrics {:.1f}s)", target.name, result.summary(options.ranks),
                  extracted - start, monotonic_seconds() - extracted);
    if (!output_dir.empty() && options.save_features) {
      const std::string dir = (fs::path(output_dir) / "features" / target.name).string();
      eval::save_feature_set(query, dir, "query");
      eval::save_feature_set(gallery, dir, "gallery");
      logger().info("{}: features written to {}", target.name, dir);
    }
    if (!output_dir.empty() && options.visualize > 0) {
      eval::RankedListOptions ranked;
      ranked.topk = options.visualize_topk;
      const std::string dir = (fs::path(output_dir) / "ranked_lists" / target.name).string();
      const auto files = eval::write_worst_ranked_lists(query, gallery, result, retrieval, options.visualize, dir, ranked);
      logger().info("{}: {} ranked lists of the worst queries in {}", target.name, files.size(), dir);
    }
    results.emplace(target.name, result);
  }
  return results;
}

}  // namespace reid::engine
