#include "reid/losses/loss_set.h"

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/losses/cross_entropy.h"

namespace reid::losses {

LossSetImpl::LossSetImpl(const LossSetOptions& options) : options_(options) {
  if (options.names().empty()) throw Error("the loss set needs at least one term");
  for (const auto& name : options.names()) {
    if (name == "ce") {
      ce_ = true;
    } else if (name == "triplet") {
      triplet_ = true;
    } else if (name == "center") {
      TORCH_CHECK(options.num_classes() > 0 && options.feature_dim() > 0,
                  "the center loss needs num_classes and feature_dim");
      center_ = register_module("center", CenterLoss(options.num_classes(), options.feature_dim()));
    } else {
      throw Error("unknown loss '" + name + "'; valid: ce, triplet, center");
    }
  }
}

LossResult LossSetImpl::forward(const models::ReidOutput& output, const torch::Tensor& targets) {
  LossResult result;
  std::vector<torch::Tensor> weighted;
  if (ce_) {
    TORCH_CHECK(output.logits.defined(),
                "the ce loss needs logits: build the model with num_classes > 0 and train mode");
    const auto value = cross_entropy_label_smooth(output.logits, targets, options_.ce_epsilon());
    weighted.push_back(options_.ce_weight() * value);
    result.terms.emplace_back("ce", value.detach());
    result.stats.emplace_back("accuracy", accuracy(output.logits.detach(), targets));
  }
  if (triplet_) {
    const auto triplet = batch_hard_triplet(output.global_feat, targets, options_.triplet());
    weighted.push_back(options_.triplet_weight() * triplet.loss);
    result.terms.emplace_back("triplet", triplet.loss.detach());
    result.stats.emplace_back("triplet_active", triplet.active_fraction);
  }
  if (center_) {
    const auto value = center_->forward(output.global_feat, targets);
    weighted.push_back(options_.center_weight() * value);
    result.terms.emplace_back("center", value.detach());
  }
  result.total = weighted.front();
  for (std::size_t i = 1; i < weighted.size(); ++i) result.total = result.total + weighted[i];
  return result;
}

}  // namespace reid::losses
