#include "reid/engine/optim.h"

#include <cmath>
#include <map>
#include <set>

#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/utils/strings.h"

namespace reid::engine {

void Optimizer::set_lr_factor(double factor) {
  auto& groups = optimizer->param_groups();
  for (std::size_t i = 0; i < groups.size(); ++i) groups[i].options().set_lr(base_lrs[i] * factor);
}

double Optimizer::lr() const { return optimizer->param_groups().front().options().get_lr(); }

Optimizer build_optimizer(const torch::nn::Module& module, const OptimizerOptions& o,
                          const std::vector<torch::Tensor>& exclude) {
  std::set<const void*> excluded;
  for (const auto& t : exclude) excluded.insert(t.unsafeGetTensorImpl());
  // Normalisation parameters: those of BatchNorm / InstanceNorm / GeM-free norm modules.
  std::set<const void*> norm;
  for (const auto& item : module.named_modules()) {
    const auto* m = item.value().get();
    const std::string type = m->name();
    if (type.find("BatchNorm") != std::string::npos || type.find("InstanceNorm") != std::string::npos)
      for (const auto& p : m->parameters(/*recurse=*/false)) norm.insert(p.unsafeGetTensorImpl());
  }
  // Group key: (bias, norm).
  std::map<std::pair<bool, bool>, std::vector<torch::Tensor>> groups;
  for (const auto& item : module.named_parameters()) {
    const auto& p = item.value();
    if (excluded.count(p.unsafeGetTensorImpl())) continue;
    const bool bias = utils::ends_with(item.key(), "bias");
    groups[{bias, norm.count(p.unsafeGetTensorImpl()) > 0}].push_back(p);
  }
  Optimizer result;
  std::vector<torch::optim::OptimizerParamGroup> param_groups;
  for (auto& entry : groups) {
    const bool bias = entry.first.first, is_norm = entry.first.second;
    const double lr = o.lr * (bias ? o.bias_lr_factor : 1.0);
    const double decay = (o.no_decay_norm_bias && (bias || is_norm)) ? 0.0 : o.weight_decay;
    std::unique_ptr<torch::optim::OptimizerOptions> options;
    if (o.name == "sgd") {
      options = std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(lr)
                                                               .momentum(o.momentum)
                                                               .nesterov(o.nesterov)
                                                               .weight_decay(decay));
    } else if (o.name == "adam" || o.name == "amsgrad") {
      options = std::make_unique<torch::optim::AdamOptions>(torch::optim::AdamOptions(lr)
                                                                .betas({o.beta1, o.beta2})
                                                                .weight_decay(decay)
                                                                .amsgrad(o.name == "amsgrad"));
    } else {
      throw ConfigError("solver.optimizer", "unknown optimizer '" + o.name + "'; valid: adam, amsgrad, sgd");
    }
    param_groups.emplace_back(entry.second, std::move(options));
    result.base_lrs.push_back(lr);
  }
  if (param_groups.empty()) throw Error("the optimizer has no parameters to train");
  if (o.name == "sgd")
    result.optimizer = std::make_unique<torch::optim::SGD>(param_groups, torch::optim::SGDOptions(o.lr));
  else
    result.optimizer = std::make_unique<torch::optim::Adam>(param_groups, torch::optim::AdamOptions(o.lr));
  return result;
}

double lr_factor(const ScheduleOptions& o, int epoch) {
  double factor = 1.0;
  if (o.name == "multistep") {
    for (int milestone : o.milestones)
      if (epoch >= milestone) factor *= o.gamma;
  } else if (o.name == "cosine") {
    const int start = o.flat_epochs;
    if (epoch >= start) {
      const double span = std::max(1, o.max_epochs - start);
      const double progress = std::min(1.0, (epoch - start) / span);
      factor = o.min_factor + (1.0 - o.min_factor) * 0.5 * (1.0 + std::cos(M_PI * progress));
    }
  } else if (o.name != "constant") {
    throw ConfigError("solver.scheduler", "unknown scheduler '" + o.name + "'; valid: multistep, cosine, constant");
  }
  if (epoch < o.warmup_epochs) {
    const double alpha = static_cast<double>(epoch) / o.warmup_epochs;
    factor *= o.warmup_factor * (1.0 - alpha) + alpha;
  }
  return factor;
}

}  // namespace reid::engine
