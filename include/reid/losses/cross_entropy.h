#pragma once
/// @file
/// Label-smoothed cross-entropy (Szegedy et al., CVPR 2016), the identity loss of torchreid and
/// BoT.

#include <torch/types.h>

namespace reid::losses {

/// Mean over the batch of -sum_c q_c log softmax(logits)_c with q = (1 - epsilon) one_hot +
/// epsilon / C. epsilon = 0 is plain cross-entropy. `logits` [N, C], `targets` int64 [N] in [0, C).
torch::Tensor cross_entropy_label_smooth(const torch::Tensor& logits, const torch::Tensor& targets,
                                         double epsilon = 0.1);

/// Fraction of rows whose arg-max equals the target, as a 0-d double tensor on the logits'
/// device (0 for an empty batch).
torch::Tensor accuracy(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace reid::losses
