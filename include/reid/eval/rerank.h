#pragma once
/// @file
/// k-reciprocal re-ranking (Zhong, Zheng, Cao, Li, CVPR 2017) with bounded memory, and average
/// query expansion.
///
/// The published algorithm builds dense N x N matrices (N = queries + gallery): the distances,
/// their argsort and the encoding V. Only small parts are ever used: each item's k1 + 1 nearest
/// neighbours, the sparse rows of V, and the query rows of the final distance. This
/// implementation keeps exactly those:
/// - the k1 + 1 nearest neighbours and the largest distance of every item (N (k1 + 2) numbers),
///   found in one blockwise pass over the N x N distances;
/// - V and its query expansion as sparse rows, plus their column index (a few dozen entries per
///   item);
/// and produces the final query x gallery distances block by block for the streaming evaluator.
/// Distances are normalised by each row's maximum, as in the reference implementation.

#include <cstdint>

#include <torch/types.h>

#include "reid/eval/distance.h"

namespace reid::eval {

/// Options of the re-ranking.
struct RerankOptions {
  /// Neighbours defining the k-reciprocal sets.
  int64_t k1 = 20;
  /// Neighbours averaged in the local query expansion of V (1 = none).
  int64_t k2 = 6;
  /// Weight of the original distance in the final one.
  double lambda = 0.3;
};

/// Re-ranked distances of query blocks, for evaluate_streaming().
class KReciprocalReranker {
 public:
  KReciprocalReranker(const torch::Tensor& query, const torch::Tensor& gallery, Metric metric,
                      const RerankOptions& options = {});
  /// Final distances of queries [begin, end) to the gallery: [end - begin, G] float32 (valid
  /// until the next call).
  torch::Tensor rows(int64_t begin, int64_t end);
  int64_t num_query() const { return num_query_; }
  int64_t num_gallery() const { return num_gallery_; }
  /// Bytes held by the sparse structures and neighbour lists.
  int64_t memory_bytes() const;

 private:
  struct Entry {
    int32_t index;
    float value;
  };
  int64_t num_query_, num_gallery_;
  RerankOptions options_;
  DistanceBlocks query_gallery_;
  std::vector<float> row_max_;
  std::vector<std::vector<Entry>> v_;        // rows of V (after query expansion), sorted by column
  std::vector<std::vector<Entry>> columns_;  // the same entries by column
  torch::Tensor buffer_;
};

/// The whole [Q, G] re-ranked distance matrix (for small sets and tests).
torch::Tensor rerank(const torch::Tensor& query, const torch::Tensor& gallery, Metric metric,
                     const RerankOptions& options = {});

/// Average query expansion: each query is replaced by the mean of itself and its k nearest
/// gallery features (L2-normalised again for the cosine metric).
torch::Tensor average_query_expansion(const torch::Tensor& query, const torch::Tensor& gallery, Metric metric,
                                      int64_t k);

}  // namespace reid::eval
