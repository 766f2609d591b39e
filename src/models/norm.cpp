#include "reid/models/norm.h"

#include <type_traits>

#include <torch/torch.h>

#include "reid/core/error.h"

namespace reid::models {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Shape [1, C, 1, ...] that broadcasts a per-channel vector against `like`.
std::vector<int64_t> channel_shape(const torch::Tensor& like) {
  std::vector<int64_t> shape(static_cast<std::size_t>(like.dim()), 1);
  shape[1] = like.size(1);
  return shape;
}

// Half-precision activations (autocast) are normalised in float32; float and double as they are.
c10::ScalarType compute_type(const torch::Tensor& t) {
  const auto type = t.scalar_type();
  return type == torch::kHalf || type == torch::kBFloat16 ? torch::kFloat : type;
}

std::vector<int64_t> reduce_dims(const torch::Tensor& like) {
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < like.dim(); ++d) dims.push_back(d);
  return dims;
}

// Per-channel statistics are accumulated in double, as LibTorch's own CPU batch norm does: the
// backward pass subtracts two means from the incoming gradient, and float32 sums lose too much to
// that cancellation in deep networks (early-layer gradients off by ~1% on OSNet in tests).
struct SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& input, const torch::Tensor& weight,
                               const torch::Tensor& bias, torch::Tensor running_mean, torch::Tensor running_var,
                               double momentum, double eps, int64_t group_address) {
    auto& group = *reinterpret_cast<SyncGroup*>(group_address);
    const auto x = input.to(compute_type(input));
    const auto dims = reduce_dims(x);
    const auto shape = channel_shape(x);
    const int64_t channels = x.size(1);
    const double count = static_cast<double>(x.numel() / std::max<int64_t>(channels, 1));
    // Two passes (mean, then squared deviations) for this process's share.
    const auto local_mean = x.sum(dims, /*keepdim=*/false, torch::kDouble) / count;
    const auto local_var =
        (x - local_mean.to(x.scalar_type()).view(shape)).pow(2).sum(dims, /*keepdim=*/false, torch::kDouble) / count;
    const auto stats = torch::cat({local_mean, local_var, torch::full({1}, count, local_mean.options())});
    const auto all = torch::stack(group.all_gather(stats));  // [W, 2C + 1]
    const auto means = all.narrow(1, 0, channels), vars = all.narrow(1, channels, channels);
    const auto counts = all.narrow(1, 2 * channels, 1);
    // The total count stays on the device: reading it back would stop the host at every layer.
    const auto n = counts.sum();
    if (n.is_cpu()) {
      TORCH_CHECK(n.item<double>() > 1, "synchronized batch norm needs more than one value per channel over all "
                                        "processes (got input of shape ", input.sizes(), ")");
    } else {
      at::_assert_async(n.gt(1), "synchronized batch norm needs more than one value per channel over all processes");
    }
    // The groups' statistics combined exactly (Chan et al.).
    const auto mean = (counts * means).sum(0) / n;
    const auto var = (counts * (vars + (means - mean).pow(2))).sum(0) / n;
    const auto invstd = (var + eps).rsqrt();
    if (running_mean.defined()) {
      torch::NoGradGuard no_grad;
      running_mean.mul_(1.0 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
      running_var.mul_(1.0 - momentum).add_((var * (n / (n - 1.0))).to(running_var.scalar_type()), momentum);
    }
    auto scale = invstd;
    if (weight.defined()) scale = scale * weight.to(torch::kDouble);
    auto shift = -mean * scale;
    if (bias.defined()) shift = shift + bias.to(torch::kDouble);
    const auto y = x * scale.to(x.scalar_type()).view(shape) + shift.to(x.scalar_type()).view(shape);
    ctx->save_for_backward({x, weight, mean, invstd, n});
    ctx->saved_data["group"] = group_address;
    ctx->saved_data["dtype"] = static_cast<int64_t>(input.scalar_type());
    return y.to(input.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &weight = saved[1], &mean = saved[2], &invstd = saved[3], &n = saved[4];
    auto& group = *reinterpret_cast<SyncGroup*>(ctx->saved_data["group"].toInt());
    const auto dtype = static_cast<c10::ScalarType>(ctx->saved_data["dtype"].toInt());
    const auto dy = grad_outputs[0].to(x.scalar_type());
    const auto dims = reduce_dims(x);
    const auto shape = channel_shape(x);
    const int64_t channels = x.size(1);
    const auto xmu = x - mean.to(x.scalar_type()).view(shape);
    const auto sum_dy = dy.sum(dims, /*keepdim=*/false, torch::kDouble);
    const auto sum_dy_xmu = (dy * xmu).sum(dims, /*keepdim=*/false, torch::kDouble);
    const auto global = group.all_reduce(torch::cat({sum_dy, sum_dy_xmu})) / n;
    const auto mean_dy = global.narrow(0, 0, channels), mean_dy_xmu = global.narrow(0, channels, channels);
    auto scale = invstd;
    if (weight.defined()) scale = scale * weight.to(torch::kDouble);
    // dx = scale * (dy - mean(dy) - (x - mean) * invstd^2 * mean(dy * (x - mean))), means over the global batch.
    const auto t = x.scalar_type();
    const auto grad_input = (dy - mean_dy.to(t).view(shape) - xmu * (invstd * invstd * mean_dy_xmu).to(t).view(shape)) *
                            scale.to(t).view(shape);
    torch::Tensor grad_weight, grad_bias;
    if (weight.defined()) {
      grad_weight = (sum_dy_xmu * invstd).to(weight.scalar_type());
      grad_bias = sum_dy.to(weight.scalar_type());
    }
    return {grad_input.to(dtype), grad_weight, grad_bias, {}, {}, {}, {}, {}};
  }
};

}  // namespace

torch::Tensor sync_batch_norm(const torch::Tensor& input, torch::nn::BatchNormOptions options,
                              const torch::Tensor& weight, const torch::Tensor& bias, torch::Tensor running_mean,
                              torch::Tensor running_var, torch::Tensor num_batches_tracked, SyncGroup& group) {
  TORCH_CHECK(input.dim() >= 2, "batch norm needs [N, C, ...] input (got ", input.sizes(), ")");
  // The running-average factor as torch::nn::BatchNorm computes it (momentum, or a cumulative
  // average when momentum is unset).
  double factor = options.momentum().value_or(0.0);
  const bool track = options.track_running_stats() && running_mean.defined();
  if (track && num_batches_tracked.defined()) {
    num_batches_tracked.add_(1);
    if (!options.momentum().has_value()) factor = 1.0 / num_batches_tracked.item<double>();
  }
  return SyncBatchNormFunction::apply(input, weight, bias, track ? running_mean : torch::Tensor(),
                                      track ? running_var : torch::Tensor(), factor, options.eps(),
                                      reinterpret_cast<int64_t>(&group));
}

template <class Derived>
void SyncableBatchNormImpl<Derived>::reset() {
  const int64_t n = options.num_features();
  if (options.affine()) {
    weight = this->register_parameter("weight", torch::empty({n}));
    bias = this->register_parameter("bias", torch::empty({n}));
  } else {
    weight = this->register_parameter("weight", torch::Tensor(), /*requires_grad=*/false);
    bias = this->register_parameter("bias", torch::Tensor(), /*requires_grad=*/false);
  }
  if (options.track_running_stats()) {
    running_mean = this->register_buffer("running_mean", torch::zeros({n}));
    running_var = this->register_buffer("running_var", torch::ones({n}));
    num_batches_tracked = this->register_buffer("num_batches_tracked", torch::tensor(0, torch::kLong));
  } else {
    running_mean = this->register_buffer("running_mean", torch::Tensor());
    running_var = this->register_buffer("running_var", torch::Tensor());
    num_batches_tracked = this->register_buffer("num_batches_tracked", torch::Tensor());
  }
  reset_parameters();
}

template <class Derived>
void SyncableBatchNormImpl<Derived>::reset_running_stats() {
  if (!options.track_running_stats()) return;
  torch::NoGradGuard no_grad;
  running_mean.zero_();
  running_var.fill_(1);
  num_batches_tracked.zero_();
}

template <class Derived>
void SyncableBatchNormImpl<Derived>::reset_parameters() {
  reset_running_stats();
  if (!options.affine()) return;
  torch::NoGradGuard no_grad;
  weight.fill_(1.0);
  bias.zero_();
}

template <class Derived>
void SyncableBatchNormImpl<Derived>::pretty_print(std::ostream& stream) const {
  const auto& o = options;
  stream << "reid::models::" << (std::is_same<Derived, BatchNorm1dImpl>::value ? "BatchNorm1d" : "BatchNorm2d") << "("
         << o.num_features() << ", eps=" << o.eps() << ", momentum=";
  if (o.momentum().has_value())
    stream << *o.momentum();
  else
    stream << "None";
  stream << ", affine=" << (o.affine() ? "true" : "false")
         << ", track_running_stats=" << (o.track_running_stats() ? "true" : "false")
         << (group_ ? ", synchronized" : "") << ")";
}

// What torch::nn::BatchNorm computes (the same call, so one process is bit-identical to it), or
// the synchronized version in training mode with a group attached.
template <class Derived>
torch::Tensor SyncableBatchNormImpl<Derived>::normalize(const torch::Tensor& input) {
  if (group_ && this->is_training())
    return sync_batch_norm(input, options, weight, bias, running_mean, running_var, num_batches_tracked, *group_);
  if (this->is_training()) {
    int64_t values = input.size(0);
    for (int64_t d = 2; d < input.dim(); ++d) values *= input.size(d);
    TORCH_CHECK(values != 1, "Expected more than 1 value per channel when training, got input size ", input.sizes());
  }
  double factor = 0.0;
  if (this->is_training() && options.track_running_stats()) {
    if (num_batches_tracked.defined()) {
      num_batches_tracked.add_(1);
      factor = options.momentum().has_value() ? *options.momentum() : 1.0 / num_batches_tracked.template item<double>();
    } else {
      factor = options.momentum().value_or(0.0);
    }
  }
  return torch::batch_norm(input, weight, bias, running_mean, running_var,
                           this->is_training() || !options.track_running_stats(), factor, options.eps(),
                           at::globalContext().userEnabledCuDNN());
}

template class SyncableBatchNormImpl<BatchNorm1dImpl>;
template class SyncableBatchNormImpl<BatchNorm2dImpl>;

torch::Tensor BatchNorm1dImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 2 || input.dim() == 3, "BatchNorm1d expects 2-d or 3-d input (got ", input.dim(), "-d)");
  return normalize(input);
}

torch::Tensor BatchNorm2dImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 4, "BatchNorm2d expects 4-d input (got ", input.dim(), "-d)");
  return normalize(input);
}

int convert_sync_batchnorm(torch::nn::Module& module, SyncGroup* group) {
  int count = 0;
  for (const auto& item : module.named_modules()) {
    torch::nn::Module& m = *item.value();
    if (auto* norm = dynamic_cast<SyncableNorm*>(&m)) {
      norm->set_sync_group(group);
      ++count;
    } else if (m.as<torch::nn::BatchNorm1d>() || m.as<torch::nn::BatchNorm2d>() || m.as<torch::nn::BatchNorm3d>()) {
      const std::string name = item.key().empty() ? std::string("the model itself") : "'" + item.key() + "'";
      throw ConfigError("model.sync_bn",
                        "module " + name + " is a plain " + m.name() +
                            ", which cannot synchronise its statistics: build it as reid::models::BatchNorm1d/2d "
                            "(same options and parameter names), or set model.sync_bn=false");
    }
  }
  return count;
}

}  // namespace reid::models
