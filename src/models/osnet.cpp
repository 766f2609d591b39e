#include "reid/models/osnet.h"

#include <cmath>

#include <torch/torch.h>

namespace reid::models {
namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1,
                       int64_t padding = 0, int64_t groups = 1, bool bias = false) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                               .stride(stride)
                               .padding(padding)
                               .groups(groups)
                               .bias(bias));
}

// torchreid's initialisation: Kaiming-normal (fan_out) convolutions, unit/zero norms, N(0, 0.01)
// linear layers, zero biases.
void init_osnet_parameters(torch::nn::Module& root) {
  torch::NoGradGuard no_grad;
  for (auto& module : root.modules(/*include_self=*/false)) {
    if (auto* c = module->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
      if (c->bias.defined()) c->bias.zero_();
    } else if (auto* b2 = module->as<BatchNorm2d>()) {
      b2->weight.fill_(1.0);
      b2->bias.zero_();
    } else if (auto* b1 = module->as<BatchNorm1d>()) {
      b1->weight.fill_(1.0);
      b1->bias.zero_();
    } else if (auto* l = module->as<torch::nn::Linear>()) {
      l->weight.normal_(0.0, 0.01);
      if (l->bias.defined()) l->bias.zero_();
    }
  }
}

}  // namespace

// ---- building blocks ----------------------------------------------------------------------------

ConvBNImpl::ConvBNImpl(const ConvBNOptions& o) : relu_(o.relu()) {
  conv = register_module(
      "conv", models::conv(o.in_channels(), o.out_channels(), o.kernel_size(), o.stride(),
                           o.padding(), o.groups()));
  if (!o.norm())
    return;
  if (o.instance_norm())
    in = register_module(
        "bn", torch::nn::InstanceNorm2d(torch::nn::InstanceNorm2dOptions(o.out_channels()).affine(true)));
  else
    bn = register_module("bn", BatchNorm2d(o.out_channels()));
}

torch::Tensor ConvBNImpl::forward(const torch::Tensor& x) {
  auto y = conv->forward(x);
  if (bn) y = bn->forward(y);
  else if (in) y = in->forward(y);
  return relu_ ? y.relu_() : y;
}

LiteConv3x3Impl::LiteConv3x3Impl(int64_t in_channels, int64_t out_channels) {
  conv1 = register_module("conv1", conv(in_channels, out_channels, 1));
  conv2 = register_module("conv2", conv(out_channels, out_channels, 3, 1, 1, out_channels));
  bn = register_module("bn", BatchNorm2d(out_channels));
}

torch::Tensor LiteConv3x3Impl::forward(const torch::Tensor& x) {
  return (bn->forward(conv2->forward(conv1->forward(x)))).relu_();
}

AggregationGateImpl::AggregationGateImpl(int64_t channels, int64_t reduction) {
  TORCH_CHECK(channels >= reduction, "aggregation gate needs at least ", reduction,
              " channels (got ", channels, ")");
  fc1 = register_module("fc1", conv(channels, channels / reduction, 1, 1, 0, 1, /*bias=*/true));
  fc2 = register_module("fc2", conv(channels / reduction, channels, 1, 1, 0, 1, /*bias=*/true));
}

torch::Tensor AggregationGateImpl::forward(const torch::Tensor& x) {
  auto g = x.mean({2, 3}, /*keepdim=*/true);
  g = torch::sigmoid(fc2->forward((fc1->forward(g)).relu_()));
  return x * g;
}

OSBlockImpl::OSBlockImpl(const OSBlockOptions& o) {
  TORCH_CHECK(o.streams() >= 1, "OSBlock needs at least one stream (got ", o.streams(), ")");
  TORCH_CHECK(o.streams() <= 26, "OSBlock supports at most 26 streams (got ", o.streams(), ")");
  const int64_t mid = o.out_channels() / o.bottleneck_reduction();
  conv1_ = register_module("conv1", ConvBN(ConvBNOptions(o.in_channels(), mid, 1)));
  torch::nn::ModuleList stream_list{nullptr};
  if (o.stream_list()) stream_list = register_module("conv2", torch::nn::ModuleList());
  for (int64_t t = 1; t <= o.streams(); ++t) {
    if (o.stream_list()) {
      // torchreid's osnet_ain: conv2.<t - 1>.layers.<i>.
      auto holder = std::make_shared<torch::nn::Module>("LightConvStream");
      torch::nn::Sequential layers;
      for (int64_t i = 0; i < t; ++i) layers->push_back(LiteConv3x3(mid, mid));
      holder->register_module("layers", layers);
      stream_list->push_back(holder);
      streams_.emplace_back([layers](const torch::Tensor& v) mutable { return layers->forward(v); });
      continue;
    }
    const std::string name = std::string("conv2") + static_cast<char>('a' + t - 1);
    if (t == 1) {
      // torchreid's first stream is a bare Lite 3x3 (conv2a.conv1.weight, ...).
      auto layer = register_module(name, LiteConv3x3(mid, mid));
      streams_.emplace_back([layer](const torch::Tensor& v) { return layer->forward(v); });
    } else {
      torch::nn::Sequential stream;
      for (int64_t i = 0; i < t; ++i) stream->push_back(LiteConv3x3(mid, mid));
      register_module(name, stream);
      streams_.emplace_back([stream](const torch::Tensor& v) mutable { return stream->forward(v); });
    }
  }
  gate_ = register_module("gate", AggregationGate(mid));
  conv3_ = register_module(
      "conv3", ConvBN(ConvBNOptions(mid, o.out_channels(), 1).relu(false).norm(!o.residual_instance_norm())));
  if (o.in_channels() != o.out_channels())
    downsample_ = register_module(
        "downsample", ConvBN(ConvBNOptions(o.in_channels(), o.out_channels(), 1).relu(false)));
  TORCH_CHECK(!(o.instance_norm() && o.residual_instance_norm()), "an OSBlock has one instance norm, after or inside the residual");
  if (o.instance_norm() || o.residual_instance_norm())
    instance_norm_ = register_module(
        "IN", torch::nn::InstanceNorm2d(torch::nn::InstanceNorm2dOptions(o.out_channels()).affine(true)));
  residual_instance_norm_ = o.residual_instance_norm();
}

torch::Tensor OSBlockImpl::forward(const torch::Tensor& x) {
  const auto x1 = conv1_->forward(x);
  torch::Tensor aggregated;
  for (auto& stream : streams_) {
    auto gated = gate_->forward(stream(x1));
    aggregated = aggregated.defined() ? aggregated.add_(gated) : gated;
  }
  auto out = conv3_->forward(aggregated);
  if (residual_instance_norm_) out = instance_norm_->forward(out);
  out = out + (downsample_ ? downsample_->forward(x) : x);
  if (instance_norm_ && !residual_instance_norm_) out = instance_norm_->forward(out);
  return out.relu_();
}

TransitionImpl::TransitionImpl(int64_t channels) {
  conv_ = register_module("0", ConvBN(ConvBNOptions(channels, channels, 1)));
  pool_ = register_module("1", torch::nn::AvgPool2d(torch::nn::AvgPool2dOptions(2).stride(2)));
}

torch::Tensor TransitionImpl::forward(const torch::Tensor& x) {
  return pool_->forward(conv_->forward(x));
}

// ---- network ------------------------------------------------------------------------------------

OSNetOptions osnet_options(double width, bool instance_norm, const ModelOptions& model) {
  TORCH_CHECK(width > 0, "OSNet width multiplier must be positive (got ", width, ")");
  std::vector<int64_t> channels;
  for (int64_t base : {64, 256, 384, 512})
    channels.push_back(static_cast<int64_t>(std::lround(base * width)));
  return OSNetOptions()
      .channels(channels)
      .streams(model.streams())
      .feature_dim(model.feature_dim())
      .instance_norm(instance_norm)
      .head(model.head());
}

OSNetOptions osnet_ain_options(double width, const ModelOptions& model) {
  return osnet_options(width, false, model).ain(true);
}

OSNetImpl::OSNetImpl(const OSNetOptions& o, const std::string& name)
    : ReidModelImpl(name), options(o) {
  const auto& c = o.channels();
  const auto& l = o.layers();
  TORCH_CHECK(c.size() == 4 && l.size() == 3, "OSNet needs 4 channel widths and 3 layer counts");
  TORCH_CHECK(!(o.ain() && o.instance_norm()), "OSNet is either the IBN or the AIN variant");
  if (o.ain()) {
    TORCH_CHECK(o.ain_blocks().size() == 3, "OSNet-AIN marks the blocks of 3 stages");
    for (std::size_t s = 0; s < 3; ++s)
      TORCH_CHECK(static_cast<int64_t>(o.ain_blocks()[s].size()) == l[s], "OSNet-AIN stage ", s + 2, " has ", l[s],
                  " blocks but ", o.ain_blocks()[s].size(), " marks");
  }
  conv1_ = register_module(
      "conv1",
      ConvBN(ConvBNOptions(3, c[0], 7).stride(2).padding(3).instance_norm(o.instance_norm() || o.ain())));
  maxpool_ = register_module("maxpool",
                             torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).padding(1)));

  auto make_stage = [&](std::size_t index, int64_t in, int64_t out, bool transition, bool in_norm) {
    torch::nn::Sequential stage;
    for (int64_t i = 0; i < l[index]; ++i)
      stage->push_back(OSBlock(OSBlockOptions(i == 0 ? in : out, out)
                                   .streams(o.streams())
                                   .instance_norm(in_norm)
                                   .residual_instance_norm(o.ain() && o.ain_blocks()[index][static_cast<std::size_t>(i)])
                                   .stream_list(o.ain())));
    // The AIN layout keeps the transitions out of the stages (pool2, pool3).
    if (transition && !o.ain()) stage->push_back(Transition(out));
    return stage;
  };
  // As torchreid's osnet_ibn_x1_0: instance norm in conv1 and in the conv2 blocks only.
  conv2_ = register_module("conv2", make_stage(0, c[0], c[1], true, o.instance_norm()));
  if (o.ain()) pool2_ = register_module("pool2", Transition(c[1]));
  conv3_ = register_module("conv3", make_stage(1, c[1], c[2], true, false));
  if (o.ain()) pool3_ = register_module("pool3", Transition(c[2]));
  conv4_ = register_module("conv4", make_stage(2, c[2], c[3], false, false));
  conv5_ = register_module("conv5", ConvBN(ConvBNOptions(c[3], c[3], 1)));

  std::function<torch::Tensor(const torch::Tensor&)> embedding;
  if (o.feature_dim() > 0) {
    fc_ = register_module("fc", torch::nn::Sequential(torch::nn::Linear(c[3], o.feature_dim()),
                                                      BatchNorm1d(o.feature_dim()),
                                                      torch::nn::ReLU(torch::nn::ReLUOptions(true))));
    embedding = [this](const torch::Tensor& v) { return fc_->forward(v); };
  }
  head_.build(*this, c[3], o.head(), embedding, o.feature_dim());
  init_osnet_parameters(*this);
  // The head initialises its own classifier and neck; re-apply after the generic pass.
  for (auto& module : modules(/*include_self=*/false))
    if (auto* classifier = module->as<Classifier>()) classifier->reset_parameters();
}

torch::Tensor OSNetImpl::featuremaps(const torch::Tensor& images) {
  auto x = maxpool_->forward(conv1_->forward(images));
  x = conv2_->forward(x);
  if (pool2_) x = pool2_->forward(x);
  x = conv3_->forward(x);
  if (pool3_) x = pool3_->forward(x);
  x = conv4_->forward(x);
  return conv5_->forward(x);
}

}  // namespace reid::models
