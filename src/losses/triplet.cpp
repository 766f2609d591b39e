#include "reid/losses/triplet.h"

#include <cmath>
#include <limits>

#include <torch/torch.h>

namespace reid::losses {
namespace {

void check_batch(const torch::Tensor& features, const torch::Tensor& targets) {
  TORCH_CHECK(features.dim() == 2, "features must be [N, D] (got ", features.sizes(), ")");
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == features.size(0),
              "targets must be [N] with N = ", features.size(0), " (got ", targets.sizes(), ")");
}

// [N, N] masks of each anchor's positives (same identity, itself excluded) and negatives.
std::pair<torch::Tensor, torch::Tensor> pair_masks(const torch::Tensor& targets, const torch::Device& device) {
  const auto labels = targets.to(device).view({-1});
  const auto same = labels.view({-1, 1}).eq(labels.view({1, -1}));
  const auto eye = torch::eye(labels.size(0), torch::TensorOptions().dtype(torch::kBool).device(device));
  return {same.logical_and(eye.logical_not()), same.logical_not()};
}

}  // namespace

torch::Tensor pairwise_distance(const torch::Tensor& a, const torch::Tensor& b, Distance metric) {
  const auto d = eval::distance_matrix(a, b, metric);
  return metric == Distance::kCosine ? d : d.clamp_min(1e-12).sqrt();
}

TripletResult batch_hard_triplet(const torch::Tensor& features, const torch::Tensor& targets,
                                 const TripletOptions& options) {
  check_batch(features, targets);
  TORCH_CHECK(options.margin() >= 0.0, "triplet margin must be >= 0 (got ", options.margin(), ")");
  auto x = features;
  if (options.normalize())
    x = torch::nn::functional::normalize(x, torch::nn::functional::NormalizeFuncOptions().dim(1).eps(1e-12));
  const auto dist = pairwise_distance(x, x, options.metric());
  const auto [positive, negative] = pair_masks(targets, x.device());

  const double inf = std::numeric_limits<double>::infinity();
  // Hardest positive: largest distance among positives; hardest negative: smallest among negatives.
  const auto [d_ap, ap_index] = dist.masked_fill(positive.logical_not(), -inf).max(1);
  const auto [d_an, an_index] = dist.masked_fill(negative.logical_not(), inf).min(1);
  const auto valid = positive.any(1).logical_and(negative.any(1));

  TripletResult result;
  result.hardest_positive = torch::where(positive.any(1), ap_index, torch::full_like(ap_index, -1));
  result.hardest_negative = torch::where(negative.any(1), an_index, torch::full_like(an_index, -1));
  result.valid_anchors = valid.sum();
  // Masked means instead of selecting the valid anchors: no data-dependent shape, so nothing
  // waits for the device. Invalid anchors get a zero gap and weight 0.
  const auto weight = valid.to(dist.scalar_type());
  const auto count = weight.sum().clamp_min(1.0);
  const auto gap = torch::where(valid, d_ap - d_an, torch::zeros_like(d_ap));
  const auto per_anchor = options.margin() > 0.0 ? torch::relu(gap + options.margin())
                                                 : torch::nn::functional::softplus(gap);
  result.loss = (per_anchor * weight).sum() / count;
  result.active_fraction =
      ((gap + options.margin()).gt(0).logical_and(valid).to(torch::kDouble).sum() / count.to(torch::kDouble)).detach();
  return result;
}

WrtResult weighted_regularized_triplet(const torch::Tensor& features, const torch::Tensor& targets,
                                       const WrtOptions& options) {
  check_batch(features, targets);
  const auto x = options.normalize() ? eval::l2_normalize(features) : features;
  const auto dist = pairwise_distance(x, x, options.metric());
  const auto [positive, negative] = pair_masks(targets, x.device());
  const double inf = std::numeric_limits<double>::infinity();

  // Softmax of `score` over the entries of `mask` in each row (0 elsewhere, and in rows without
  // any): shifted by the row's largest masked score, so that large distances do not underflow.
  auto masked_softmax = [&](const torch::Tensor& score, const torch::Tensor& mask) {
    const auto any = mask.any(1, true);
    const auto top = std::get<0>(score.detach().masked_fill(mask.logical_not(), -inf).max(1, true));
    const auto shift = torch::where(any, top, torch::zeros_like(top));
    const auto e = (score - shift).masked_fill(mask.logical_not(), -inf).exp();
    return e / e.sum(1, true).clamp_min(1e-12);
  };
  WrtResult result;
  result.weighted_positive = (dist * masked_softmax(dist, positive)).sum(1);
  result.weighted_negative = (dist * masked_softmax(-dist, negative)).sum(1);
  const auto valid = positive.any(1).logical_and(negative.any(1));
  result.valid_anchors = valid.sum();
  const auto weight = valid.to(dist.scalar_type());
  const auto gap = torch::where(valid, result.weighted_positive - result.weighted_negative, torch::zeros_like(dist.select(1, 0)));
  result.loss = (torch::nn::functional::softplus(gap) * weight).sum() / weight.sum().clamp_min(1.0);
  return result;
}

bool triplet_collapsed(const std::vector<std::pair<std::string, double>>& epoch_means, double margin,
                       const std::string& loss_key) {
  // The term's active fraction is its own statistic, "<term>_active" ("triplet_active").
  const std::string active_key = loss_key + "_active";
  double triplet = -1, active = -1;
  for (const auto& t : epoch_means) {
    if (t.first == loss_key) triplet = t.second;
    if (t.first == active_key) active = t.second;
  }
  return margin > 0 && triplet >= 0 && active >= 0.999 && std::abs(triplet - margin) < 0.01 * margin;
}

}  // namespace reid::losses
