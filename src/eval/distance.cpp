#include "reid/eval/distance.h"

#include <algorithm>

#include <torch/torch.h>

#include "reid/core/error.h"

namespace reid::eval {

Metric parse_metric(const std::string& name) {
  if (name == "euclidean") return Metric::kEuclidean;
  if (name == "cosine") return Metric::kCosine;
  throw Error("unknown distance metric '" + name + "'; valid: euclidean, cosine");
}

torch::Tensor l2_normalize(const torch::Tensor& features) {
  return features / features.norm(2, 1, true).clamp_min(1e-12);
}

torch::Tensor distance_matrix(const torch::Tensor& a, const torch::Tensor& b, Metric metric, bool normalized) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2, "features must be [N, D] (got ", a.sizes(), " and ", b.sizes(), ")");
  TORCH_CHECK(a.size(1) == b.size(1), "the features differ in width (", a.size(1), " vs ", b.size(1), ")");
  if (metric == Metric::kCosine) {
    if (normalized) return 1.0 - torch::mm(a, b.t());
    return 1.0 - torch::mm(l2_normalize(a), l2_normalize(b).t());
  }
  return (a.pow(2).sum(1, true) + b.pow(2).sum(1, true).t() - 2.0 * torch::mm(a, b.t())).clamp_min(0.0);
}

torch::Tensor compute_distance(const torch::Tensor& query, const torch::Tensor& gallery, Metric metric) {
  DistanceBlocks blocks(query, gallery, metric);
  return blocks.rows(0, query.size(0));
}

DistanceBlocks::DistanceBlocks(torch::Tensor query, torch::Tensor gallery, Metric metric) : metric_(metric) {
  TORCH_CHECK(query.dim() == 2 && gallery.dim() == 2, "features must be [N, D] (got ", query.sizes(), " and ",
              gallery.sizes(), ")");
  TORCH_CHECK(query.size(1) == gallery.size(1), "query and gallery features differ in width (", query.size(1),
              " vs ", gallery.size(1), ")");
  query_ = query.to(torch::kFloat);
  gallery_ = gallery.to(torch::kFloat);
  if (metric == Metric::kCosine) {  // once, not per block
    query_ = l2_normalize(query_);
    gallery_ = l2_normalize(gallery_);
  }
}

torch::Tensor DistanceBlocks::rows(int64_t begin, int64_t end) {
  TORCH_CHECK(begin >= 0 && begin <= end && end <= query_.size(0), "bad query block [", begin, ", ", end, ")");
  torch::NoGradGuard no_grad;
  return distance_matrix(query_.narrow(0, begin, end - begin), gallery_, metric_, /*normalized=*/true);
}

int64_t block_rows_for(int64_t rows, int64_t columns, int64_t budget_bytes) {
  const int64_t per_row = std::max<int64_t>(1, columns) * 4;
  return std::max<int64_t>(1, std::min<int64_t>(rows, budget_bytes / per_row));
}

}  // namespace reid::eval
