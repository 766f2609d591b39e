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
#include <functional>
#include <memory>

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
  /// From a precomputed [N, N] distance matrix of the queries (rows and columns 0 .. num_query)
  /// followed by the gallery, used as given (any non-negative dissimilarity; symmetric, as the
  /// published algorithm assumes). It is kept (a float32 copy when it is not one already).
  KReciprocalReranker(const torch::Tensor& all_distances, int64_t num_query, const RerankOptions& options = {});
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
  // Builds the neighbour lists and V from the rows of the N x N distances and single entries.
  void build(const std::function<torch::Tensor(int64_t, int64_t)>& all_rows,
             const std::function<float(int64_t, int64_t)>& distance);
  int64_t num_query_, num_gallery_;
  RerankOptions options_;
  std::unique_ptr<DistanceBlocks> query_gallery_;  // from features
  torch::Tensor all_distances_;                    // or the given matrix
  std::vector<float> row_max_;
  std::vector<std::vector<Entry>> v_;        // rows of V (after query expansion), sorted by column
  std::vector<std::vector<Entry>> columns_;  // the same entries by column
  torch::Tensor buffer_;
};

/// The whole [Q, G] re-ranked distance matrix (for small sets and tests).
torch::Tensor rerank(const torch::Tensor& query, const torch::Tensor& gallery, Metric metric,
                     const RerankOptions& options = {});

/// The re-ranked [Q, G] distances from a precomputed [N, N] matrix of queries then gallery (see
/// the matrix constructor). torchreid's `re_ranking(q_g, q_q, g_g)` is this on the square of the
/// matrix its three blocks make (it squares its inputs).
torch::Tensor rerank_distances(const torch::Tensor& all_distances, int64_t num_query, const RerankOptions& options = {});

/// Average query expansion: each query is replaced by the mean of itself and its k nearest
/// gallery features (L2-normalised again for the cosine metric).
torch::Tensor average_query_expansion(const torch::Tensor& query, const torch::Tensor& gallery, Metric metric,
                                      int64_t k);

}  // namespace reid::eval
