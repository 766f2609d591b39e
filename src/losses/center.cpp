#include "reid/losses/center.h"

#include <torch/torch.h>

namespace reid::losses {

CenterLossImpl::CenterLossImpl(int64_t num_classes, int64_t feature_dim)
    : CenterLossImpl(num_classes, {{"global", feature_dim}}, 0.5) {}

CenterLossImpl::CenterLossImpl(int64_t num_classes, const std::vector<std::pair<std::string, int64_t>>& inputs,
                               double lr)
    : lr_(lr) {
  TORCH_CHECK(num_classes > 0 && !inputs.empty(), "center loss needs identities and at least one feature");
  for (const auto& [name, dim] : inputs) {
    TORCH_CHECK(dim > 0, "center loss needs positive sizes (feature '", name, "' has width ", dim, ")");
    const std::string parameter = sets_.empty() ? "centers" : "centers_" + name;
    names_.push_back(name);
    sets_.push_back(register_parameter(parameter, torch::randn({num_classes, dim})));
  }
  centers = sets_.front();
}

torch::Tensor CenterLossImpl::loss(const torch::Tensor& centers, const torch::Tensor& features,
                                   const torch::Tensor& targets) {
  TORCH_CHECK(features.dim() == 2 && features.size(1) == centers.size(1),
              "center loss expects [N, ", centers.size(1), "] features (got ", features.sizes(), ")");
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == features.size(0), "targets must be [N]");
  const auto assigned = centers.index_select(0, targets.to(torch::kLong).to(centers.device()));
  return (features - assigned).pow(2).sum(1).clamp(1e-12, 1e12).mean();
}

torch::Tensor CenterLossImpl::forward(const torch::Tensor& features, const torch::Tensor& targets) {
  return loss(centers, features, targets);
}

TermValue CenterLossImpl::evaluate(const models::ReidOutput& output, const torch::Tensor& targets) {
  // With one set of centres (a single-branch model) the names need not match: the main feature.
  const auto inputs = select_inputs(output, TermInput::kEmbeddings,
                                    sets_.size() == 1 ? std::vector<std::string>{} : names_, "center");
  TORCH_CHECK(sets_.size() == 1 ? !inputs.empty() : inputs.size() == sets_.size(), "the center loss has ",
              sets_.size(), " sets of centres but got ", inputs.size(), " features");
  std::vector<torch::Tensor> values;
  for (std::size_t i = 0; i < sets_.size(); ++i) values.push_back(loss(sets_[i], inputs[i], targets));
  const auto value = mean_over(values, [](const torch::Tensor& v) { return v; },
                               sets_.size() == 1 ? std::vector<double>{} : select_weights(output, TermInput::kEmbeddings, names_));
  return {value, {}};
}

std::unique_ptr<torch::optim::Optimizer> CenterLossImpl::make_optimizer() {
  return std::make_unique<torch::optim::SGD>(parameters(), torch::optim::SGDOptions(lr_));
}

}  // namespace reid::losses
