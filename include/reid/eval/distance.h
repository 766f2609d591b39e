#pragma once
/// @file
/// Query-gallery distances, computed in blocks of query rows so that the full query x gallery
/// matrix never has to exist at once.

#include <cstdint>
#include <functional>
#include <string>

#include <torch/types.h>

namespace reid::eval {

/// Distance between feature vectors.
enum class Metric {
  /// Squared euclidean: |q|^2 + |g|^2 - 2 q.g.
  kEuclidean,
  /// Cosine distance 1 - q.g of the L2-normalised features.
  kCosine
};

/// Parses "euclidean" / "cosine"; throws reid::Error otherwise.
Metric parse_metric(const std::string& name);
/// "euclidean" / "cosine": the inverse of parse_metric().
std::string metric_name(Metric metric);

/// Rows of `features` scaled to unit L2 norm (zero rows stay zero).
torch::Tensor l2_normalize(const torch::Tensor& features);

/// The library's one pairwise distance, used by the metric losses and by evaluation: [N, M]
/// between the rows of `a` [N, D] and `b` [M, D]. Euclidean: the squared distance
/// |a|^2 + |b|^2 - 2 a.b, clamped at 0 (rounding makes it slightly negative for near-equal rows);
/// cosine: 1 - cos(a, b) of the L2-normalised rows (`normalized`: the rows are unit already).
/// One matrix product of rows extended by their squared norms and ones, so that the [N, M]
/// result is the only matrix of that size ever made. Differentiable; works in the inputs' dtype
/// and device.
torch::Tensor distance_matrix(const torch::Tensor& a, const torch::Tensor& b, Metric metric,
                                bool normalized = false);

/// The full [Q, G] distance matrix (for small sets and tests; use DistanceBlocks for large ones).
torch::Tensor compute_distance(const torch::Tensor& query, const torch::Tensor& gallery, Metric metric);

/// Distances of query blocks to the whole gallery: distance_matrix() written into one reused
/// buffer.
class DistanceBlocks {
 public:
  /// `query` [Q, D] and `gallery` [G, D] on one device, computed in float32; cosine normalises
  /// them once.
  DistanceBlocks(torch::Tensor query, torch::Tensor gallery, Metric metric);
  /// distance_matrix() of queries [begin, end) to every gallery item: a [end - begin, G]
  /// float32 tensor, a view of the buffer, valid until the next call.
  torch::Tensor rows(int64_t begin, int64_t end);
  int64_t num_query() const { return query_.size(0); }
  int64_t num_gallery() const { return gallery_.size(0); }

 private:
  Metric metric_;
  torch::Tensor query_, gallery_;  // extended rows (see distance_matrix)
  torch::Tensor buffer_;
};

/// Rows per block such that a block of `columns` float32 distances takes about `budget_bytes`
/// (at least 1, at most `rows`).
int64_t block_rows_for(int64_t rows, int64_t columns, int64_t budget_bytes = 64LL << 20);

}  // namespace reid::eval
