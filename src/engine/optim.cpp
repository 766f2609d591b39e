#include "reid/engine/optim.h"

#include <cmath>
#include <map>
#include <set>

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include "reid/core/error.h"
#include "reid/utils/strings.h"

namespace reid::engine {

void Optimizer::set_lr_factor(double factor) {
  auto& groups = optimizer->param_groups();
  for (std::size_t i = 0; i < groups.size(); ++i) groups[i].options().set_lr(base_lrs[i] * factor);
}

double Optimizer::lr() const { return optimizer->param_groups().front().options().get_lr(); }

const OptimizerRegistry& builtin_optimizers() {
  static const OptimizerRegistry registry = [] {
    OptimizerRegistry r("optimizer");
    r.add("sgd", [] {
      OptimizerKind kind;
      kind.group = [](double lr, double decay, const OptimizerOptions& o) -> std::unique_ptr<torch::optim::OptimizerOptions> {
        return std::make_unique<torch::optim::SGDOptions>(
            torch::optim::SGDOptions(lr).momentum(o.momentum).nesterov(o.nesterov).weight_decay(decay));
      };
      kind.make = [](std::vector<torch::optim::OptimizerParamGroup> groups,
                     const OptimizerOptions& o) -> std::unique_ptr<torch::optim::Optimizer> {
        return std::make_unique<torch::optim::SGD>(std::move(groups), torch::optim::SGDOptions(o.lr));
      };
      return kind;
    });
    for (const bool amsgrad : {false, true}) {
      r.add(amsgrad ? "amsgrad" : "adam", [amsgrad] {
        OptimizerKind kind;
        kind.group = [amsgrad](double lr, double decay,
                               const OptimizerOptions& o) -> std::unique_ptr<torch::optim::OptimizerOptions> {
          return std::make_unique<torch::optim::AdamOptions>(
              torch::optim::AdamOptions(lr).betas({o.beta1, o.beta2}).weight_decay(decay).amsgrad(amsgrad));
        };
        kind.make = [](std::vector<torch::optim::OptimizerParamGroup> groups,
                       const OptimizerOptions& o) -> std::unique_ptr<torch::optim::Optimizer> {
          return std::make_unique<torch::optim::Adam>(std::move(groups), torch::optim::AdamOptions(o.lr));
        };
        return kind;
      });
    }
    return r;
  }();
  return registry;
}

Optimizer build_optimizer(const torch::nn::Module& module, const OptimizerOptions& o,
                          const std::vector<torch::Tensor>& exclude, const OptimizerRegistry& optimizers) {
  if (!optimizers.contains(o.name)) throw ConfigError("solver.optimizer", optimizers.unknown_message(o.name));
  const OptimizerKind kind = optimizers.create(o.name);
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
    auto options = kind.group(lr, decay, o);
    param_groups.emplace_back(entry.second, std::move(options));
    result.base_lrs.push_back(lr);
  }
  if (param_groups.empty()) throw Error("the optimizer has no parameters to train");
  result.optimizer = kind.make(std::move(param_groups), o);
  return result;
}

const SchedulerRegistry& builtin_schedulers() {
  static const SchedulerRegistry registry = [] {
    SchedulerRegistry r("scheduler");
    r.add("multistep", [](const ScheduleOptions& o, int epoch) {
      double factor = 1.0;
      for (int milestone : o.milestones)
        if (epoch >= milestone) factor *= o.gamma;
      return factor;
    });
    r.add("cosine", [](const ScheduleOptions& o, int epoch) {
      const int start = o.flat_epochs;
      if (epoch < start) return 1.0;
      const double span = std::max(1, o.max_epochs - start);
      const double progress = std::min(1.0, (epoch - start) / span);
      return o.min_factor + (1.0 - o.min_factor) * 0.5 * (1.0 + std::cos(M_PI * progress));
    });
    r.add("constant", [](const ScheduleOptions&, int) { return 1.0; });
    return r;
  }();
  return registry;
}

double lr_factor(const ScheduleOptions& o, int epoch, const SchedulerRegistry& schedules) {
  if (!schedules.contains(o.name)) throw ConfigError("solver.scheduler", schedules.unknown_message(o.name));
  double factor = schedules.create(o.name, o, epoch);
  if (epoch < o.warmup_epochs) {
    const double alpha = static_cast<double>(epoch) / o.warmup_epochs;
    factor *= o.warmup_factor * (1.0 - alpha) + alpha;
  }
  return factor;
}

}  // namespace reid::engine

namespace reid::engine {

void clip_gradients(const std::vector<torch::Tensor>& parameters, double max_norm) {
  std::vector<torch::Tensor> grads, norms;
  for (const auto& p : parameters)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return;
  for (const auto& g : grads) norms.push_back(g.detach().norm(2).to(torch::kFloat));
  const auto total = torch::stack(norms).norm(2);
  // min(1, max_norm / (total + 1e-6)) as a device tensor: no branch on the host.
  const auto factor = (max_norm / (total + 1e-6)).clamp_max(1.0);
  torch::NoGradGuard no_grad;
  for (auto& g : grads) g.mul_(factor.to(g.scalar_type()));
}

LossScalerImpl::LossScalerImpl(double init_scale, double growth, double backoff, int64_t interval)
    : growth_(growth), backoff_(backoff), interval_(interval) {
  scale_ = register_buffer("scale", torch::full({}, init_scale, torch::kDouble));
  tracker_ = register_buffer("growth_tracker", torch::zeros({}, torch::kLong));
}

double LossScalerImpl::current() const { return scale_.item<double>(); }

torch::Tensor LossScalerImpl::scale(const torch::Tensor& loss) const { return loss * current(); }

bool LossScalerImpl::unscale(const std::vector<torch::Tensor>& parameters) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : parameters)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return true;
  const double inverse = 1.0 / current();
  const auto device = grads.front().device();
  bool same_device = true;
  for (const auto& g : grads) same_device = same_device && g.device() == device && g.scalar_type() == torch::kFloat;
  torch::NoGradGuard no_grad;
  if (device.is_cuda() && same_device) {
    // The fused CUDA kernel: one launch for every gradient.
    auto found = torch::zeros({1}, torch::TensorOptions().device(device));
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found, torch::full({1}, inverse, found.options()));
    return found.item<float>() == 0.0f;
  }
  std::vector<torch::Tensor> finite;
  for (auto& g : grads) {
    g.mul_(inverse);
    finite.push_back(g.isfinite().all());
  }
  return torch::stack(finite).all().item<bool>();
}

void LossScalerImpl::update(bool finite) {
  torch::NoGradGuard no_grad;
  if (!finite) {
    scale_.mul_(backoff_);
    tracker_.zero_();
  } else if (tracker_.add_(1).item<int64_t>() >= interval_) {
    scale_.mul_(growth_);
    tracker_.zero_();
  }
}

AutocastGuard::AutocastGuard(bool enabled, torch::ScalarType dtype) : enabled_(enabled) {
  if (!enabled_) return;
  at::autocast::set_autocast_enabled(at::kCUDA, true);
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
}

AutocastGuard::~AutocastGuard() {
  if (!enabled_) return;
  at::autocast::set_autocast_enabled(at::kCUDA, false);
  at::autocast::clear_cache();
}

}  // namespace reid::engine
