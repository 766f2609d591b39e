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

/// Rows of `features` scaled to unit L2 norm (zero rows stay zero).
torch::Tensor l2_normalize(const torch::Tensor& features);

/// The full [Q, G] distance matrix (for small sets and tests; use DistanceBlocks for large ones).
torch::Tensor compute_distance(const torch::Tensor& query, const torch::Tensor& gallery, Metric metric);

/// Distances of query blocks to the whole gallery, reusing one buffer.
class DistanceBlocks {
 public:
  /// `query` [Q, D] and `gallery` [G, D] float32 on one device; cosine normalises them once.
  DistanceBlocks(torch::Tensor query, torch::Tensor gallery, Metric metric);
  /// Distances of queries [begin, end) to every gallery item: a [end - begin, G] float32 tensor
  /// that stays valid until the next call.
  torch::Tensor rows(int64_t begin, int64_t end);
  int64_t num_query() const { return query_.size(0); }
  int64_t num_gallery() const { return gallery_.size(0); }

 private:
  // Augmented so that one matrix product gives the distance, with no extra pass over the block:
  // euclidean [q, |q|^2, 1] . [-2g, 1, |g|^2]; cosine [q, 1] . [-g, 1] (normalised q, g).
  torch::Tensor query_, gallery_, buffer_;
};

/// Rows per block such that a block of `columns` float32 distances takes about `budget_bytes`
/// (at least 1, at most `rows`).
int64_t block_rows_for(int64_t rows, int64_t columns, int64_t budget_bytes = 64LL << 20);

}  // namespace reid::eval
