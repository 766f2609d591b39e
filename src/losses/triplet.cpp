#include "reid/losses/triplet.h"

#include <limits>

#include <torch/torch.h>

namespace reid::losses {

torch::Tensor pairwise_distance(const torch::Tensor& a, const torch::Tensor& b, Distance metric) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1),
              "pairwise_distance expects [N, D] and [M, D] (got ", a.sizes(), " and ", b.sizes(), ")");
  if (metric == Distance::kCosine) {
    namespace F = torch::nn::functional;
    const auto norm = F::NormalizeFuncOptions().dim(1).eps(1e-12);
    return 1.0 - torch::mm(F::normalize(a, norm), F::normalize(b, norm).t());
  }
  const auto squared = a.pow(2).sum(1, true) + b.pow(2).sum(1, true).t() - 2.0 * torch::mm(a, b.t());
  return squared.clamp_min(1e-12).sqrt();
}

TripletResult batch_hard_triplet(const torch::Tensor& features, const torch::Tensor& targets,
                                 const TripletOptions& options) {
  TORCH_CHECK(features.dim() == 2, "features must be [N, D] (got ", features.sizes(), ")");
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == features.size(0),
              "targets must be [N] with N = ", features.size(0), " (got ", targets.sizes(), ")");
  TORCH_CHECK(options.margin() >= 0.0, "triplet margin must be >= 0 (got ", options.margin(), ")");
  auto x = features;
  if (options.normalize())
    x = torch::nn::functional::normalize(x, torch::nn::functional::NormalizeFuncOptions().dim(1).eps(1e-12));
  const auto dist = pairwise_distance(x, x, options.metric());
  const int64_t n = x.size(0);
  const auto labels = targets.to(x.device()).view({-1});
  const auto same = labels.view({-1, 1}).eq(labels.view({1, -1}));
  const auto eye = torch::eye(n, torch::TensorOptions().dtype(torch::kBool).device(x.device()));
  const auto positive = same.logical_and(eye.logical_not());
  const auto negative = same.logical_not();

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

}  // namespace reid::losses
