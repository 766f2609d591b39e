#include "reid/losses/loss_set.h"

#include <torch/torch.h>

#include "reid/core/error.h"

namespace reid::losses {

LossSetImpl::LossSetImpl(const LossSetOptions& options, const LossRegistry& registry) : options_(options) {
  if (options.names().empty()) throw Error("the loss set needs at least one term");
  for (const auto& name : options.names()) {
    if (term(name)) throw Error("the loss term '" + name + "' is listed twice");
    auto built = registry.create(name, options);
    if (!built) throw Error("the loss registry's builder of '" + name + "' returned nothing");
    // Only terms with state are submodules: the loss set's module tree (what checkpoints hold
    // under "loss") stays what it was before terms were registered objects, so older
    // checkpoints load.
    const bool stateful = !built->parameters().empty() || !built->buffers().empty();
    terms_.emplace_back(name, stateful ? register_module(name, built) : built);
    if (auto optimizer = built->make_optimizer())
      auxiliary_.push_back({name + "_optimizer", built, std::move(optimizer)});
  }
}

std::vector<std::pair<std::string, torch::optim::Optimizer*>> LossSetImpl::auxiliary_optimizers() const {
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> out;
  for (const auto& a : auxiliary_) out.emplace_back(a.name, a.optimizer.get());
  return out;
}

void LossSetImpl::zero_auxiliary_grad() {
  for (auto& a : auxiliary_) a.optimizer->zero_grad();
}

void LossSetImpl::step_auxiliary() {
  for (auto& a : auxiliary_) {
    const double scale = a.term->optimizer_grad_scale();
    if (scale != 1.0)
      for (auto& group : a.optimizer->param_groups())
        for (auto& p : group.params())
          if (p.grad().defined()) p.mutable_grad().mul_(scale);
    a.optimizer->step();
  }
}

std::vector<std::pair<std::string, std::string>> LossSetImpl::epoch_warnings(
    const std::vector<std::pair<std::string, double>>& epoch_means) const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, term] : terms_) {
    auto warning = term->epoch_warning(name, epoch_means);
    if (!warning.empty()) out.emplace_back(name, std::move(warning));
  }
  return out;
}

LossTerm LossSetImpl::term(const std::string& name) const {
  for (const auto& [n, t] : terms_)
    if (n == name) return t;
  return nullptr;
}

CenterLoss LossSetImpl::center() const {
  auto found = std::dynamic_pointer_cast<CenterLossImpl>(term("center"));
  return found ? CenterLoss(found) : CenterLoss(nullptr);
}

LossResult LossSetImpl::forward(const models::ReidOutput& output, const torch::Tensor& targets) {
  LossResult result;
  for (const auto& [name, term] : terms_) {
    auto value = term->evaluate(output, targets);
    TORCH_CHECK(value.value.defined() && value.value.dim() == 0, "the loss term '", name,
                "' must return a 0-d tensor");
    const auto weighted = term->weight() * value.value;
    result.total = result.total.defined() ? result.total + weighted : weighted;
    result.terms.emplace_back(name, value.value.detach());
    for (auto& stat : value.stats) result.stats.push_back(std::move(stat));
  }
  return result;
}

}  // namespace reid::losses
