#include "reid/losses/center.h"

#include <torch/torch.h>

namespace reid::losses {

CenterLossImpl::CenterLossImpl(int64_t num_classes, int64_t feature_dim) {
  TORCH_CHECK(num_classes > 0 && feature_dim > 0, "center loss needs positive sizes");
  centers = register_parameter("centers", torch::randn({num_classes, feature_dim}));
}

torch::Tensor CenterLossImpl::forward(const torch::Tensor& features, const torch::Tensor& targets) {
  TORCH_CHECK(features.dim() == 2 && features.size(1) == centers.size(1),
              "center loss expects [N, ", centers.size(1), "] features (got ", features.sizes(), ")");
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == features.size(0), "targets must be [N]");
  const auto assigned = centers.index_select(0, targets.to(torch::kLong).to(centers.device()));
  return (features - assigned).pow(2).sum(1).clamp(1e-12, 1e12).mean();
}

}  // namespace reid::losses
