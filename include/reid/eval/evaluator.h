#pragma once
/// @file
/// From a model and images to metrics: feature extraction (the only part that touches the
/// model), feature sets on disk (.npy, the format Python users export), and retrieval
/// evaluation with the optional normalisation, query expansion and re-ranking.

#include <string>
#include <vector>

#include <torch/types.h>

#include "reid/data/image_io.h"
#include "reid/data/records.h"
#include "reid/data/transforms.h"
#include "reid/eval/metrics.h"
#include "reid/eval/rerank.h"
#include "reid/models/model.h"

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

/// Options of extract_features().
struct ExtractOptions {
  int64_t batch_size = 128;
  int workers = 2;
  /// Average the features of each image and its mirror image.
  bool flip = false;
  torch::Device device = torch::kCPU;
  /// Feed images in channels-last layout (matching a channels-last model avoids layout changes).
  bool channels_last = false;
  /// Floating-point type of the model's parameters (images are converted to it).
  torch::ScalarType dtype = torch::kFloat;
  /// Largest image decoded (width x height).
  int64_t max_image_pixels = data::kDefaultMaxImagePixels;
};

/// Test features of `records`: the model runs in eval mode without gradients; images go through
/// `transform` (resize + normalise); batches are loaded by the threaded loader.
FeatureSet extract_features(models::ReidModelImpl& model, const data::RecordList& records,
                            const data::Transform& transform, const ExtractOptions& options = {});

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
