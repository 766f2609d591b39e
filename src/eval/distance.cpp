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

torch::Tensor compute_distance(const torch::Tensor& query, const torch::Tensor& gallery, Metric metric) {
  DistanceBlocks blocks(query, gallery, metric);
  return blocks.rows(0, query.size(0)).clone();
}

DistanceBlocks::DistanceBlocks(torch::Tensor query, torch::Tensor gallery, Metric metric) {
  TORCH_CHECK(query.dim() == 2 && gallery.dim() == 2, "features must be [N, D] (got ", query.sizes(), " and ",
              gallery.sizes(), ")");
  TORCH_CHECK(query.size(1) == gallery.size(1), "query and gallery features differ in width (", query.size(1),
              " vs ", gallery.size(1), ")");
  // Built in place: the gallery may be large, so no temporary copies of it.
  const int64_t dim = query.size(1), extra = metric == Metric::kCosine ? 1 : 2;
  auto augment = [&](const torch::Tensor& x, bool is_query) {
    auto out = torch::empty({x.size(0), dim + extra}, torch::TensorOptions().dtype(torch::kFloat).device(x.device()));
    auto body = out.narrow(1, 0, dim);
    body.copy_(x);
    if (metric == Metric::kCosine) {
      body.div_(body.norm(2, 1, true).clamp_min(1e-12));
      if (!is_query) body.neg_();
      out.narrow(1, dim, 1).fill_(1.0f);
    } else {
      const auto squared = body.pow(2).sum(1, true);
      if (is_query) {
        out.narrow(1, dim, 1).copy_(squared);
        out.narrow(1, dim + 1, 1).fill_(1.0f);
      } else {
        body.mul_(-2.0f);
        out.narrow(1, dim, 1).fill_(1.0f);
        out.narrow(1, dim + 1, 1).copy_(squared);
      }
    }
    return out;
  };
  query_ = augment(query, true);
  gallery_ = augment(gallery, false);
}

torch::Tensor DistanceBlocks::rows(int64_t begin, int64_t end) {
  TORCH_CHECK(begin >= 0 && begin <= end && end <= query_.size(0), "bad query block [", begin, ", ", end, ")");
  const int64_t n = end - begin;
  if (!buffer_.defined() || buffer_.size(0) < n) buffer_ = torch::empty({n, gallery_.size(0)}, query_.options());
  auto out = buffer_.narrow(0, 0, n);
  torch::mm_out(out, query_.narrow(0, begin, n), gallery_.t());
  return out;
}

int64_t block_rows_for(int64_t rows, int64_t columns, int64_t budget_bytes) {
  const int64_t per_row = std::max<int64_t>(1, columns) * 4;
  return std::max<int64_t>(1, std::min<int64_t>(rows, budget_bytes / per_row));
}

}  // namespace reid::eval
