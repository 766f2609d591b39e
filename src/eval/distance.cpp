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

std::string metric_name(Metric metric) { return metric == Metric::kCosine ? "cosine" : "euclidean"; }

torch::Tensor l2_normalize(const torch::Tensor& features) {
  return features / features.norm(2, 1, true).clamp_min(1e-12);
}

namespace {

enum class Side { kLeft, kRight };

// Rows extended so that one matrix product gives the distances, with nothing but the GEMM's
// output of size [N, M]: euclidean [a, |a|^2, 1] . [-2b, 1, |b|^2] = |a|^2 + |b|^2 - 2 a.b,
// cosine [a, 1] . [-b, 1] = 1 - a.b (unit rows). Differentiable; without autograd it is built in
// place, with no temporary copy of a large gallery.
torch::Tensor extended(const torch::Tensor& x, Metric metric, Side side, bool normalized) {
  const int64_t dim = x.size(1), extra = metric == Metric::kCosine ? 1 : 2;
  if (x.requires_grad() && torch::GradMode::is_enabled()) {
    const auto one = torch::ones({x.size(0), 1}, x.options());
    if (metric == Metric::kCosine) {
      const auto unit = normalized ? x : l2_normalize(x);
      return torch::cat({side == Side::kLeft ? unit : -unit, one}, 1);
    }
    const auto squared = x.pow(2).sum(1, true);
    return side == Side::kLeft ? torch::cat({x, squared, one}, 1) : torch::cat({x * -2.0, one, squared}, 1);
  }
  torch::NoGradGuard no_grad;
  auto out = torch::empty({x.size(0), dim + extra}, x.options());
  auto body = out.narrow(1, 0, dim);
  body.copy_(x);
  if (metric == Metric::kCosine) {
    if (!normalized) body.div_(body.norm(2, 1, true).clamp_min(1e-12));
    if (side == Side::kRight) body.neg_();
    out.narrow(1, dim, 1).fill_(1.0);
    return out;
  }
  const auto squared = body.pow(2).sum(1, true);
  if (side == Side::kLeft) {
    out.narrow(1, dim, 1).copy_(squared);
    out.narrow(1, dim + 1, 1).fill_(1.0);
  } else {
    body.mul_(-2.0);
    out.narrow(1, dim, 1).fill_(1.0);
    out.narrow(1, dim + 1, 1).copy_(squared);
  }
  return out;
}

// The product of extended rows; squared euclidean distances are clamped at 0 (rounding makes
// them slightly negative for near-equal rows), in place when no gradient is recorded.
torch::Tensor finish(torch::Tensor product, Metric metric) {
  if (metric == Metric::kCosine) return product;
  return product.requires_grad() ? product.clamp_min(0.0) : product.clamp_min_(0.0);
}

}  // namespace

torch::Tensor distance_matrix(const torch::Tensor& a, const torch::Tensor& b, Metric metric, bool normalized) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2, "features must be [N, D] (got ", a.sizes(), " and ", b.sizes(), ")");
  TORCH_CHECK(a.size(1) == b.size(1), "the features differ in width (", a.size(1), " vs ", b.size(1), ")");
  return finish(torch::mm(extended(a, metric, Side::kLeft, normalized), extended(b, metric, Side::kRight, normalized).t()),
                metric);
}

torch::Tensor compute_distance(const torch::Tensor& query, const torch::Tensor& gallery, Metric metric) {
  DistanceBlocks blocks(query, gallery, metric);
  return blocks.rows(0, query.size(0)).clone();
}

DistanceBlocks::DistanceBlocks(torch::Tensor query, torch::Tensor gallery, Metric metric) : metric_(metric) {
  TORCH_CHECK(query.dim() == 2 && gallery.dim() == 2, "features must be [N, D] (got ", query.sizes(), " and ",
              gallery.sizes(), ")");
  TORCH_CHECK(query.size(1) == gallery.size(1), "query and gallery features differ in width (", query.size(1),
              " vs ", gallery.size(1), ")");
  torch::NoGradGuard no_grad;
  // Extended once (normalised for cosine), in float32, not per block.
  query_ = extended(query.detach().to(torch::kFloat), metric, Side::kLeft, /*normalized=*/false);
  gallery_ = extended(gallery.detach().to(torch::kFloat), metric, Side::kRight, /*normalized=*/false);
}

torch::Tensor DistanceBlocks::rows(int64_t begin, int64_t end) {
  TORCH_CHECK(begin >= 0 && begin <= end && end <= query_.size(0), "bad query block [", begin, ", ", end, ")");
  torch::NoGradGuard no_grad;
  const int64_t n = end - begin;
  if (!buffer_.defined() || buffer_.size(0) < n) buffer_ = torch::empty({n, gallery_.size(0)}, query_.options());
  auto out = buffer_.narrow(0, 0, n);
  torch::mm_out(out, query_.narrow(0, begin, n), gallery_.t());
  return finish(out, metric_);
}

int64_t block_rows_for(int64_t rows, int64_t columns, int64_t budget_bytes) {
  const int64_t per_row = std::max<int64_t>(1, columns) * 4;
  return std::max<int64_t>(1, std::min<int64_t>(rows, budget_bytes / per_row));
}

}  // namespace reid::eval
