#pragma once
/// @file
/// Triplet loss with batch-hard mining (Hermans, Beyer, Leibe, "In Defense of the Triplet Loss
/// for Person Re-Identification", 2017), as used by BoT.

#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "reid/eval/distance.h"

namespace reid::losses {

/// Feature distance used by metric losses: the evaluation's metrics (one implementation,
/// eval::distance_matrix), with euclidean distances not squared.
using Distance = eval::Metric;

/// Pairwise distances [N, M] between rows of `a` [N, D] and `b` [M, D]: euclidean
/// sqrt(max(d2, 1e-12)) of eval::distance_matrix's squared distance d2, or cosine 1 - cos(a, b).
/// Differentiable.
torch::Tensor pairwise_distance(const torch::Tensor& a, const torch::Tensor& b, Distance metric);

/// Options of batch_hard_triplet().
struct TripletOptions {
  /// Margin m of max(d_ap - d_an + m, 0); 0 selects the soft margin log(1 + exp(d_ap - d_an)).
  TORCH_ARG(double, margin) = 0.3;
  /// Distance.
  TORCH_ARG(Distance, metric) = Distance::kEuclidean;
  /// L2-normalise the features first.
  TORCH_ARG(bool, normalize) = false;
};

/// Result of batch_hard_triplet().
struct TripletResult {
  /// Mean loss over the valid anchors (0, still attached to the graph, when none is valid).
  torch::Tensor loss;
  /// Fraction of valid anchors whose triplet is active (d_ap - d_an + margin > 0): a 0-d double
  /// tensor on the features' device (0 when no anchor is valid).
  torch::Tensor active_fraction;
  /// Per anchor: index of the hardest (farthest) positive other than itself, -1 if none.
  torch::Tensor hardest_positive;
  /// Per anchor: index of the hardest (closest) negative, -1 if none.
  torch::Tensor hardest_negative;
  /// Anchors that have both a positive and a negative in the batch (0-d int64 tensor).
  torch::Tensor valid_anchors;
};

/// For every anchor, the farthest same-identity sample and the closest other-identity sample;
/// anchors lacking either are left out. Works with any batch composition (P x K or not).
/// Nothing is read back to the host (no device synchronisation).
TripletResult batch_hard_triplet(const torch::Tensor& features, const torch::Tensor& targets,
                                 const TripletOptions& options = {});

/// True when an epoch's mean batch-hard triplet loss (`epoch_means`' entry `loss_key`, the term's
/// name) sat at `margin` (within 1%) with every triplet active (its `<loss_key>_active` >= 0.999): the
/// embedding collapsed to a point, since then every distance is 0 and the loss is exactly the
/// margin. False without those entries or with the soft margin (0).
bool triplet_collapsed(const std::vector<std::pair<std::string, double>>& epoch_means, double margin,
                       const std::string& loss_key = "triplet");

/// Options of weighted_regularized_triplet().
struct WrtOptions {
  /// Distance.
  TORCH_ARG(Distance, metric) = Distance::kEuclidean;
  /// L2-normalise the features first.
  TORCH_ARG(bool, normalize) = false;
};

/// Result of weighted_regularized_triplet().
struct WrtResult {
  /// Mean loss over the valid anchors (0, still attached to the graph, when none is valid).
  torch::Tensor loss;
  /// Per anchor: the softmax-weighted positive distance sum_p w_p d_ap (0 when none).
  torch::Tensor weighted_positive;
  /// Per anchor: the softmax-weighted negative distance sum_n w_n d_an (0 when none).
  torch::Tensor weighted_negative;
  /// Anchors that have both a positive and a negative in the batch (0-d int64 tensor).
  torch::Tensor valid_anchors;
};

/// Weighted regularised triplet (WRT) of AGW (Ye et al., TPAMI 2021): for every anchor, the
/// positives other than itself weighted by softmax(d_ap) and the negatives by softmax(-d_an),
/// loss log(1 + exp(sum w_p d_ap - sum w_n d_an)): no margin, every pair contributes, the
/// hardest most. The weights are part of the graph. Anchors lacking a positive or a negative are
/// left out.
WrtResult weighted_regularized_triplet(const torch::Tensor& features, const torch::Tensor& targets,
                                       const WrtOptions& options = {});

}  // namespace reid::losses
