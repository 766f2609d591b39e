#include "reid/losses/cross_entropy.h"

#include <torch/torch.h>

namespace reid::losses {

torch::Tensor cross_entropy_label_smooth(const torch::Tensor& logits, const torch::Tensor& targets,
                                         double epsilon) {
  TORCH_CHECK(logits.dim() == 2, "logits must be [N, C] (got ", logits.sizes(), ")");
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0),
              "targets must be [N] with N = ", logits.size(0), " (got ", targets.sizes(), ")");
  TORCH_CHECK(epsilon >= 0.0 && epsilon < 1.0, "label smoothing epsilon must be in [0, 1) (got ",
              epsilon, ")");
  const int64_t classes = logits.size(1);
  const auto labels = targets.to(torch::kLong);
  if (labels.numel() > 0) {
    if (labels.is_cpu()) {
      TORCH_CHECK(labels.min().item<int64_t>() >= 0 && labels.max().item<int64_t>() < classes,
                  "targets must lie in [0, ", classes, ")");
    } else {
      // Checked on the device: reading the labels back would stop the host at every step.
      at::_assert_async(labels.ge(0).all().logical_and(labels.lt(classes).all()),
                        "targets must lie in [0, number of classes)");
    }
  }
  const auto log_probs = torch::log_softmax(logits, 1);
  // -(1 - eps) log p_y - eps / C * sum_c log p_c
  const auto nll = -log_probs.gather(1, labels.view({-1, 1})).squeeze(1);
  const auto uniform = -log_probs.mean(1);
  return ((1.0 - epsilon) * nll + epsilon * uniform).mean();
}

torch::Tensor accuracy(const torch::Tensor& logits, const torch::Tensor& targets) {
  if (logits.size(0) == 0) return torch::zeros({}, logits.options().dtype(torch::kDouble));
  return logits.argmax(1).eq(targets.to(logits.device(), torch::kLong)).to(torch::kDouble).mean();
}

}  // namespace reid::losses
