#include "reid/losses/loss_set.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>
#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/utils/strings.h"

namespace reid::losses {
namespace {

// A key of a term's block its builder never asked for is a typo or an option of another term.
void check_all_read(const TermParams& own) {
  const auto unread = own.unread();
  if (unread.empty()) return;
  const std::string& key = unread.front();
  const auto asked = own.asked();
  std::string message = "unknown option of the loss term '" + own.term() + "'";
  const std::string suggestion = utils::closest_match(key, asked);
  if (!suggestion.empty()) message += " (did you mean '" + suggestion + "'?)";
  message += "; it reads: " + utils::join(asked);
  throw ConfigError("loss." + own.term() + "." + key, message);
}

}  // namespace

LossSetImpl::LossSetImpl(const LossSetOptions& options, const LossRegistry& registry) : options_(options) {
  if (options.names().empty()) throw Error("the loss set needs at least one term");
  for (const auto& block : options.params())
    if (std::find(options.names().begin(), options.names().end(), block.first) == options.names().end())
      throw ConfigError("loss." + block.first, "options of a term the loss set does not use (terms: " +
                                                   utils::join(options.names()) + ")");
  for (const auto& name : options.names()) {
    if (term(name)) throw Error("the loss term '" + name + "' is listed twice");
    auto term_options = options;
    term_options.term(name);
    auto built = registry.create(name, term_options);
    if (!built) throw Error("the loss registry's builder of '" + name + "' returned nothing");
    // `weight` belongs to every term's block; the set reads it after the builder.
    const TermParams own = term_options.own();
    const double weight = own.number("weight", built->weight());
    if (weight < 0.0) throw ConfigError("loss." + name + ".weight", "must be at least 0 (got " + fmt::format("{}", weight) + ")");
    built->set_weight(weight);
    check_all_read(own);
    // Only terms with state are submodules: the loss set's module tree (what checkpoints hold
    // under "loss") stays what it was before terms were registered objects, so older
    // checkpoints load.
    const bool stateful = !built->parameters().empty() || !built->buffers().empty();
    terms_.emplace_back(name, stateful ? register_module(name, built) : built);
    if (auto optimizer = built->make_optimizer()) {
      // The center loss rescales its centres' gradient by 1 / weight: a weight of 0 would
      // make it infinite (and the centres NaN).
      if (!std::isfinite(built->optimizer_grad_scale()))
        throw ConfigError("loss." + name + ".weight", "must be positive for a term that trains parameters of its own "
                                                      "(got " + fmt::format("{}", built->weight()) + ")");
      auxiliary_.push_back({name + "_optimizer", built, std::move(optimizer)});
    }
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
    for (auto& stat : value.stats) {
      for (const auto& earlier : result.stats)
        TORCH_CHECK(earlier.first != stat.first, "two loss terms report a statistic named '", stat.first,
                    "' (the second is '", name, "'): name a term's statistics after the term");
      result.stats.push_back(std::move(stat));
    }
  }
  return result;
}

}  // namespace reid::losses
