#include "reid/eval/evaluator.h"

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/io/npy.h"

namespace reid::eval {

FeatureSet load_feature_set(const std::string& features, const std::string& pids, const std::string& camids,
                            const std::string& paths) {
  FeatureSet set;
  set.features = io::read_features(features);
  set.pids = io::read_labels(pids, set.features.size(0));
  set.camids = io::read_labels(camids, set.features.size(0));
  if (!paths.empty()) {
    set.paths = io::read_npy_strings(paths);
    if (static_cast<int64_t>(set.paths.size()) != set.size())
      throw IOError(paths, "has " + std::to_string(set.paths.size()) + " paths but the features have " +
                               std::to_string(set.size()) + " rows");
  }
  return set;
}

void save_feature_set(const FeatureSet& set, const std::string& dir, const std::string& prefix) {
  const std::string base = dir + "/" + prefix;
  io::write_npy(base + "_features.npy", set.features);
  io::write_npy(base + "_pids.npy", set.pids);
  io::write_npy(base + "_camids.npy", set.camids);
  io::write_npy_strings(base + "_paths.npy", set.paths);
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
                                       10, options.seed, options.eval.average_precision);
  }
  if (options.rerank) {
    KReciprocalReranker reranker(q, g, options.metric, options.rerank_options);
    return evaluate_streaming([&](int64_t b, int64_t e) { return reranker.rows(b, e); }, q.size(0), g.size(0),
                              query.pids, gallery.pids, query.camids, gallery.camids, options.eval);
  }
  return evaluate_features(q, g, query.pids, gallery.pids, query.camids, gallery.camids, options.metric, options.eval);
}

}  // namespace reid::eval
