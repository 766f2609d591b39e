#pragma once
/// @file
/// From features to metrics: feature sets on disk (.npy, the format Python users export) and
/// retrieval evaluation with the optional normalisation, query expansion and re-ranking. Pure
/// functions over tensors: running a model to get the features is deploy/extract.h.

#include <string>
#include <vector>

#include <torch/types.h>

#include "reid/eval/metrics.h"
#include "reid/eval/rerank.h"

namespace reid::eval {

/// Features of a set of images with their labels.
struct FeatureSet {
  /// float32 [N, D] on the CPU.
  torch::Tensor features;
  /// int64 [N].
  torch::Tensor pids;
  /// int64 [N].
  torch::Tensor camids;
  /// Image paths (may be empty when loaded from features only).
  std::vector<std::string> paths;
  int64_t size() const { return features.defined() ? features.size(0) : 0; }
};

/// Reads features / pids / camids .npy files (and optionally paths), checking that they agree.
/// Throws reid::IOError naming the offending file.
FeatureSet load_feature_set(const std::string& features, const std::string& pids, const std::string& camids,
                            const std::string& paths = "");

/// Writes <dir>/<prefix>_features.npy, _pids.npy, _camids.npy and _paths.npy.
void save_feature_set(const FeatureSet& set, const std::string& dir, const std::string& prefix);

/// Options of evaluate_retrieval().
struct RetrievalOptions {
  Metric metric = Metric::kEuclidean;
  /// L2-normalise the features first.
  bool normalize = false;
  /// Average query expansion with this many gallery neighbours (0 = off).
  int64_t query_expansion = 0;
  /// k-reciprocal re-ranking.
  bool rerank = false;
  RerankOptions rerank_options;
  /// CUHK03 classic protocol: single-gallery-shot CMC (10 seeded repeats).
  bool cuhk03_single_shot = false;
  uint64_t seed = 0;
  EvalOptions eval;
};

/// Evaluates `query` against `gallery`.
EvalResult evaluate_retrieval(const FeatureSet& query, const FeatureSet& gallery, const RetrievalOptions& options);

/// The query features after the normalisation and query expansion of `options` (what
/// evaluate_retrieval() ranks with), and likewise for the gallery.
std::pair<torch::Tensor, torch::Tensor> prepare_features(const FeatureSet& query, const FeatureSet& gallery,
                                                         const RetrievalOptions& options);

}  // namespace reid::eval
