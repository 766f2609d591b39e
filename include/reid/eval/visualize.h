#pragma once
/// @file
/// Ranked-list images: a query and its top-k gallery images, with green borders for true
/// matches and red for false ones, the camera and distance written under each image. Gallery
/// images from the query's own camera with the query's identity are left out, as in the metrics.

#include <functional>
#include <string>
#include <vector>

#include "reid/eval/evaluator.h"

namespace reid::eval {

/// Options of write_ranked_lists().
struct RankedListOptions {
  /// Gallery images per list.
  int topk = 10;
  /// Size each image is drawn at.
  int height = 128;
  int width = 64;
};

/// The `count` valid queries with the lowest AP, worst first (ties: lower index first).
std::vector<int64_t> worst_queries(const EvalResult& result, int64_t count);

/// Draws one PNG per query in `queries` into `dir` (created if needed), named
/// `<position>_q<query index>.png`; `distance_row(q)` gives query q's distances to the gallery
/// ([G], as ranked by the evaluation). Returns the files written. Needs the images' paths.
std::vector<std::string> write_ranked_lists(const std::function<torch::Tensor(int64_t)>& distance_row,
                                            const FeatureSet& query, const FeatureSet& gallery,
                                            const std::vector<int64_t>& queries, const std::string& dir,
                                            const RankedListOptions& options = {});

/// Ranked lists of the `count` worst queries of `result` (worst_queries()), ranked as the
/// evaluation ranked them: the features prepared by `retrieval` (normalisation, query expansion),
/// then its distance, re-ranked when `retrieval.rerank`. What reid-test and reid-eval draw.
std::vector<std::string> write_worst_ranked_lists(const FeatureSet& query, const FeatureSet& gallery,
                                                  const EvalResult& result, const RetrievalOptions& retrieval,
                                                  int64_t count, const std::string& dir,
                                                  const RankedListOptions& options = {});

}  // namespace reid::eval
